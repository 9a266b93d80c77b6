// The only translation unit of gyrus_nifti that includes ITK: reads the stored values of
// one volume with itk::NiftiImageIO (byte order, datatypes, gzip, header extensions), the
// independent second reader the tests hold the reader's own (Nifti.cpp) to. Geometry
// and scaling come from our header reader, which has already checked the file, so that
// malformed files never reach ITK.
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
    std::vector<unsigned char> buffer(count * static_cast<size_t>(header.bytesPerVoxel));
    io->Read(buffer.data());
    // ITK hands the values over in this machine's byte order; the scaling and the
    // conversion to float are the reader's own (decodeBytes), so that the tests compare
    // what each decoder reads from the file.
    Header native = header;
    native.swapped = false;
    decodeBytes(native, buffer, slope, inter, out);
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
