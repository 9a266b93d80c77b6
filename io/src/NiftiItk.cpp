// The only translation unit of gyrus_nifti that includes ITK: decodes the voxels of one
// volume with itk::NiftiImageIO (byte order, datatypes, gzip, header extensions).
// Geometry and scaling come from our own header reader (NiftiHeader.cpp), which has
// already checked the file, so that malformed files never reach ITK.
#include <itkImageIORegion.h>
#include <itkNiftiImageIO.h>
#include <itkNiftiImageIOFactory.h>
#include <itkVersion.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <exception>
#include <mutex>
#include <new>

#include "NiftiFormat.h"

namespace gyrus::io::detail {
namespace {

using Component = itk::IOComponentEnum;

void registerFactoryOnce() {
  static std::once_flag once;
  std::call_once(once, [] { itk::NiftiImageIOFactory::RegisterOneFactory(); });
}

template <typename T>
void convert(const char* buffer, size_t count, double slope, double inter, std::vector<float>& out) {
  out.resize(count);
  for (size_t i = 0; i < count; ++i) {
    T v;
    std::memcpy(&v, buffer + i * sizeof(T), sizeof(T));
    out[i] = static_cast<float>(static_cast<double>(v) * slope + inter);
  }
}

}  // namespace

std::string itkVersion() { return std::string("ITK ") + itk::Version::GetITKVersion(); }

bool decodeVolume(const std::string& path, const Header& header, int64_t volume, double slope, double inter,
                  std::vector<float>& out, std::string& error) {
  try {
    registerFactoryOnce();
    itk::NiftiImageIO::Pointer io = itk::NiftiImageIO::New();
    if (!io->CanReadFile(path.c_str())) {
      error = "ITK's NIfTI reader does not accept this file";
      return false;
    }
    io->SetFileName(path);
    io->ReadImageInformation();
    const unsigned dims = io->GetNumberOfDimensions();
    if (io->GetNumberOfComponents() != 1) {
      error = "ITK reads this file as a vector image; only scalar images are supported";
      return false;
    }
    // ITK must see the same grid as our header reader.
    for (unsigned d = 0; d < dims; ++d) {
      int64_t expected = d < 3 ? header.shape[d] : (d == 3 ? header.volumes : 1);
      if (static_cast<int64_t>(io->GetDimensions(d)) != expected) {
        error = "ITK reads dimension " + std::to_string(d + 1) + " as " + std::to_string(io->GetDimensions(d)) +
                " but the header says " + std::to_string(expected);
        return false;
      }
    }
    itk::ImageIORegion region(dims);
    for (unsigned d = 0; d < dims; ++d) {
      region.SetIndex(d, d == 3 ? volume : 0);
      region.SetSize(d, d == 3 ? 1 : io->GetDimensions(d));
    }
    io->SetIORegion(region);

    // NiftiImageIO would apply scl_slope/scl_inter itself (promoting integer data to
    // float32 first, or scaling float data in place). We scale in double ourselves, with
    // the NIfTI rule for invalid slopes, so switch its scaling off and ask for the
    // values as stored on disk.
    io->SetRescaleSlope(1.0);
    io->SetRescaleIntercept(0.0);
    const std::string& type = header.typeName;
    const Component onDisk = type == "uint8"     ? Component::UCHAR
                             : type == "int8"    ? Component::CHAR
                             : type == "int16"   ? Component::SHORT
                             : type == "uint16"  ? Component::USHORT
                             : type == "int32"   ? Component::INT
                             : type == "uint32"  ? Component::UINT
                             : type == "int64"   ? Component::LONGLONG
                             : type == "uint64"  ? Component::ULONGLONG
                             : type == "float32" ? Component::FLOAT
                                                 : Component::DOUBLE;
    io->SetComponentType(onDisk);
    if (io->GetComponentSize() != static_cast<size_t>(header.bytesPerVoxel)) {
      error = "internal: ITK's component size for " + type + " is " + std::to_string(io->GetComponentSize());
      return false;
    }

    const size_t count = static_cast<size_t>(header.voxelsPerVolume);
    std::vector<char> buffer(count * static_cast<size_t>(header.bytesPerVoxel));
    io->Read(buffer.data());

    const char* b = buffer.data();
    if (type == "uint8") convert<uint8_t>(b, count, slope, inter, out);
    else if (type == "int8") convert<int8_t>(b, count, slope, inter, out);
    else if (type == "int16") convert<int16_t>(b, count, slope, inter, out);
    else if (type == "uint16") convert<uint16_t>(b, count, slope, inter, out);
    else if (type == "int32") convert<int32_t>(b, count, slope, inter, out);
    else if (type == "uint32") convert<uint32_t>(b, count, slope, inter, out);
    else if (type == "int64") convert<int64_t>(b, count, slope, inter, out);
    else if (type == "uint64") convert<uint64_t>(b, count, slope, inter, out);
    else if (type == "float32") convert<float>(b, count, slope, inter, out);
    else convert<double>(b, count, slope, inter, out);
    return true;
  } catch (const itk::ExceptionObject& e) {
    // ITK's descriptions span several lines with source locations; keep the first
    // sentence of the description.
    std::string what = e.GetDescription();
    if (size_t nl = what.find('\n'); nl != std::string::npos) what.resize(nl);
    error = "ITK could not read the file: " + what;
    return false;
  } catch (const std::bad_alloc&) {
    error = "out of memory while decoding the voxels";
    return false;
  }
}

}  // namespace gyrus::io::detail
