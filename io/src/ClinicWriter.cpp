// `gyrus synth` (see ClinicWriter.h): lays out the synthetic clinic's subjects as files.
#include "ClinicWriter.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <set>
#include <sstream>
#include <thread>

#include "gyrus/clinic/Clinic.h"

namespace gyrus::io {
namespace {

namespace fs = std::filesystem;

IoResult fail(IoResult::Status status, std::string message) {
  IoResult r;
  r.status = status;
  r.message = std::move(message);
  return r;
}

std::string fixed(double v, int digits) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", digits, v);
  return buf;
}

/// Writes `text` to a temporary file next to `path`, then renames it over `path`.
bool writeTextAtomic(const fs::path& path, const std::string& text, std::string& error) {
  const fs::path tmp = path.string() + ".tmp" + std::to_string(::getpid());
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out << text;
    out.close();
    if (!out) {
      std::error_code ignored;
      fs::remove(tmp, ignored);
      error = path.string() + ": cannot write the file";
      return false;
    }
  }
  std::error_code ec;
  fs::rename(tmp, path, ec);
  if (ec) {
    std::error_code ignored;
    fs::remove(tmp, ignored);
    error = path.string() + ": " + ec.message();
    return false;
  }
  return true;
}

bool validSiteName(const std::string& s) {
  if (s.empty() || s.size() > 64) return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-' ||
           c == '.';
  });
}

const char* describeLayout(rt::ClinicTask task) {
  switch (task) {
    case rt::ClinicTask::Pretrain: return "FOMO60K-like pretraining data: one sample per scan, no labels";
    case rt::ClinicTask::Infarct: return "FOMO25 task 1, infarct classification: label 0 or 1";
    case rt::ClinicTask::Meningioma: return "FOMO25 task 2, meningioma segmentation: a {0,1} mask";
    case rt::ClinicTask::BrainAge: return "FOMO25 task 3, brain age regression: label in years";
  }
  return "";
}

const char* describeFiles(rt::ClinicTask task) {
  switch (task) {
    case rt::ClinicTask::Pretrain:
      return "sub_N/ses_1/<sequence>.nii.gz, a subset of t1, t2, flair, dwi_b1000 + adc, swi | t2s per subject";
    case rt::ClinicTask::Infarct:
      return "preprocessed/sub_N/ses_1/{flair,dwi_b1000,adc,swi|t2s}.nii.gz, labels/sub_N/ses_1/label.txt";
    case rt::ClinicTask::Meningioma:
      return "preprocessed/sub_N/ses_1/{flair,dwi_b1000,swi|t2s}.nii.gz, labels/sub_N/ses_1/seg.nii.gz";
    case rt::ClinicTask::BrainAge:
      return "preprocessed/sub_N/ses_1/{t1,t2}.nii.gz, labels/sub_N/ses_1/label.txt";
  }
  return "";
}

/// A volume of the clinic as an image with a RAS affine, 1 mm voxels, centred on the
/// world origin.
Image toImage(const rt::Volume& v) {
  Image img;
  img.shape = {v.shape[0], v.shape[1], v.shape[2]};
  img.spacing = {1.0, 1.0, 1.0};
  img.affine = {};
  for (size_t i = 0; i < 3; ++i) {
    img.affine[i][i] = 1.0;
    img.affine[i][3] = -0.5 * static_cast<double>(v.shape[i] - 1);
  }
  img.affine[3][3] = 1.0;
  img.orientation = "RAS";
  img.data = v.data;
  return img;
}

/// What README.txt summarises about one subject.
struct Record {
  std::string site;
  double age = 0.0;
  int infarct = 0;
  double infarctMl = 0.0, meningiomaMl = 0.0;
  std::vector<std::string> sequences;
};

class Writer {
 public:
  Writer(const SynthRequest& request, rt::ClinicTask task) : request_(request), task_(task) {
    options_.task = task;
    options_.size = {request.size, request.size, request.size};
    options_.seed = request.seed;
    options_.lesionContrast = request.lesionContrast;
    options_.lesionSize = request.lesionSize;
    options_.ageEffect = request.ageEffect;
    for (const std::string& name : request.sites) options_.sites.push_back(rt::ClinicSite::fromName(name));
    records_.resize(static_cast<size_t>(request.subjects));
  }

  IoResult run(SynthSummary& summary) {
    const auto start = std::chrono::steady_clock::now();
    const fs::path root = request_.out;
    std::error_code ec;
    if (task_ != rt::ClinicTask::Pretrain) {
      for (const char* top : {"preprocessed", "labels"}) {
        fs::create_directories(root / top, ec);
        if (ec) return fail(IoResult::Status::UserError, (root / top).string() + ": " + ec.message());
      }
    }
    unsigned cores = std::max(1u, std::thread::hardware_concurrency());
    int64_t threads = request_.threads > 0 ? request_.threads : std::min<int64_t>(cores, 8);
    threads = std::clamp<int64_t>(threads, 1, request_.subjects);
    std::vector<std::thread> workers;
    for (int64_t t = 0; t < threads; ++t) workers.emplace_back([this] { work(); });
    for (std::thread& w : workers) w.join();
    if (!error_.ok()) return error_;

    std::string error;
    std::ostringstream tsv;
    tsv << "subject\tsite\n";
    for (size_t i = 0; i < records_.size(); ++i) tsv << "sub_" << i + 1 << '\t' << records_[i].site << '\n';
    if (!writeText(root / "sites.tsv", tsv.str(), error)) return fail(IoResult::Status::UserError, error);
    if (!writeText(root / "README.txt", readme(), error)) return fail(IoResult::Status::UserError, error);

    summary.subjects = request_.subjects;
    summary.files = files_;
    summary.bytes = bytes_;
    summary.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    return {};
  }

 private:
  void work() {
    while (!stop_.load()) {
      int64_t index = next_.fetch_add(1);
      if (index >= request_.subjects) return;
      try {
        std::string error;
        if (!writeSubject(index, error)) {
          setError(fail(IoResult::Status::UserError, error));
          return;
        }
      } catch (const std::exception& e) {
        setError(fail(IoResult::Status::InternalError, std::string("internal: subject ") + std::to_string(index + 1) +
                                                            ": " + e.what()));
        return;
      }
      std::lock_guard<std::mutex> lock(mutex_);
      ++done_;
      if (request_.progress) request_.progress(done_, request_.subjects);
    }
  }

  void setError(IoResult r) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (error_.ok()) error_ = std::move(r);
    stop_ = true;
  }

  bool writeSubject(int64_t index, std::string& error) {
    rt::ClinicSubject s = rt::synthesizeClinic(options_, index);
    const std::string id = "sub_" + std::to_string(index + 1);
    const fs::path root = request_.out;
    const bool pretrain = task_ == rt::ClinicTask::Pretrain;
    const fs::path images = pretrain ? root / id / "ses_1" : root / "preprocessed" / id / "ses_1";
    const fs::path labels = root / "labels" / id / "ses_1";
    for (const fs::path& dir : {images, labels}) {
      if (pretrain && dir == labels) continue;
      std::error_code ec;
      fs::create_directories(dir, ec);
      if (ec) {
        error = dir.string() + ": cannot create the directory: " + ec.message();
        return false;
      }
    }
    WriteOptions image;
    image.datatype = "int16";
    image.sourceGeometry = false;
    Record& r = records_[static_cast<size_t>(index)];
    for (const rt::ClinicSequence& q : s.sequences) {
      if (!writeImage(images / (q.name + ".nii.gz"), toImage(q.image), image, error)) return false;
      r.sequences.push_back(q.name);
    }
    switch (task_) {
      case rt::ClinicTask::Pretrain: break;
      case rt::ClinicTask::Infarct:
        if (!writeText(labels / "label.txt", std::to_string(s.infarct) + "\n", error)) return false;
        break;
      case rt::ClinicTask::Meningioma: {
        WriteOptions mask;
        mask.datatype = "uint8";
        mask.sourceGeometry = false;
        if (!writeImage(labels / "seg.nii.gz", toImage(s.meningiomaMask), mask, error)) return false;
        break;
      }
      case rt::ClinicTask::BrainAge:
        if (!writeText(labels / "label.txt", fixed(s.age, 1) + "\n", error)) return false;
        break;
    }
    r.site = s.site;
    r.age = s.age;
    r.infarct = s.infarct;
    r.infarctMl = s.infarctMl;
    r.meningiomaMl = s.meningiomaMl;
    return true;
  }

  bool writeImage(const fs::path& path, const Image& img, const WriteOptions& options, std::string& error) {
    if (!io::writeNifti(path.string(), img, options, error)) {
      error = path.string() + ": " + error;
      return false;
    }
    count(path);
    return true;
  }

  bool writeText(const fs::path& path, const std::string& text, std::string& error) {
    if (!writeTextAtomic(path, text, error)) return false;
    count(path);
    return true;
  }

  void count(const fs::path& path) {
    std::error_code ec;
    auto size = fs::file_size(path, ec);
    std::lock_guard<std::mutex> lock(mutex_);
    ++files_;
    if (!ec) bytes_ += static_cast<int64_t>(size);
  }

  std::string readme() const {
    std::ostringstream o;
    o << "gyrus synth: a synthetic clinic (synthetic brain MRI, not patient data)\n\n";
    o << "command    " << request_.command << "\n";
    if (!request_.generator.empty()) o << "generator  " << request_.generator << "\n";
    o << "layout     " << rt::toString(task_) << ": " << describeLayout(task_) << "\n";
    o << "files      " << describeFiles(task_) << "\n";
    o << "subjects   " << request_.subjects << " (sub_1 to sub_" << request_.subjects << "), one session (ses_1)\n";
    o << "images     " << request_.size << "x" << request_.size << "x" << request_.size
      << " voxels of 1 mm, RAS affine centred on the origin, int16 (adc in 1e-6 mm^2/s), 0 outside the brain "
         "(skull-stripped)\n";
    o << "seed       " << request_.seed << "\n";
    o << "findings   contrast " << request_.lesionContrast * 100.0 << " % of the table's, size "
      << request_.lesionSize * 100.0 << " % (--lesion-contrast, --lesion-size)\n"
      << "ageing     " << request_.ageEffect * 100.0 << " % of the table's effects of age (--age-effect)\n";
    o << "\nsites (subject i is scanned at site i mod " << options_.sites.size() << "; sites.tsv lists them):\n";
    for (const rt::ClinicSite& s : options_.sites)
      o << "  " << s.name << "  scale " << fixed(s.scale, 0) << "  gamma " << fixed(s.gamma, 3) << "  bias "
        << fixed(s.biasStrength, 3) << "  noise " << fixed(s.noise, 4) << "  slice " << fixed(s.sliceMm, 1)
        << " mm\n";
    o << "\nlabels: ";
    switch (task_) {
      case rt::ClinicTask::Pretrain: {
        int64_t scans = 0;
        for (const Record& r : records_) scans += static_cast<int64_t>(r.sequences.size());
        o << "none; " << scans << " scans\n";
        break;
      }
      case rt::ClinicTask::Infarct: {
        int64_t positive = 0;
        for (const Record& r : records_) positive += r.infarct;
        o << positive << " with an infarct (1), " << request_.subjects - positive << " without (0)\n";
        break;
      }
      case rt::ClinicTask::Meningioma: {
        double lo = 1e300, hi = 0.0;
        for (const Record& r : records_) lo = std::min(lo, r.meningiomaMl), hi = std::max(hi, r.meningiomaMl);
        o << "every subject has one meningioma, " << fixed(lo, 2) << " to " << fixed(hi, 2) << " ml\n";
        break;
      }
      case rt::ClinicTask::BrainAge: {
        double lo = 1e300, hi = 0.0;
        for (const Record& r : records_) lo = std::min(lo, r.age), hi = std::max(hi, r.age);
        o << "ages " << fixed(lo, 1) << " to " << fixed(hi, 1) << " years\n";
        break;
      }
    }
    o << "\nThe same command writes the same bytes: subject N depends only on (seed, N, its site).\n"
         "The generator is described in runtime/src/Clinic.h and docs/data.md (`gyrus synth`).\n";
    return o.str();
  }

  const SynthRequest& request_;
  rt::ClinicTask task_;
  rt::ClinicOptions options_;
  std::vector<Record> records_;
  std::atomic<int64_t> next_{0};
  std::atomic<bool> stop_{false};
  std::mutex mutex_;
  IoResult error_;
  int64_t done_ = 0, files_ = 0, bytes_ = 0;
};

}  // namespace

IoResult writeClinic(const SynthRequest& request, SynthSummary& summary) {
  try {
    rt::ClinicTask task{};
    if (!rt::parseClinicTask(request.layout, task))
      return fail(IoResult::Status::UserError, "unknown layout '" + request.layout +
                                                   "' (fomo60k, fomo25-task1, fomo25-task2 or fomo25-task3)");
    if (request.subjects < 1 || request.subjects > 100000)
      return fail(IoResult::Status::UserError,
                  "--subjects must be between 1 and 100000, not " + std::to_string(request.subjects));
    if (request.size < 16 || request.size > 512)
      return fail(IoResult::Status::UserError, "--size must be between 16 and 512, not " + std::to_string(request.size));
    if (request.sites.empty()) return fail(IoResult::Status::UserError, "--sites names no site");
    std::set<std::string> seen;
    for (const std::string& s : request.sites) {
      if (!validSiteName(s))
        return fail(IoResult::Status::UserError,
                    "site name '" + s + "' must be 1 to 64 letters, digits, '_', '-' or '.'");
      if (!seen.insert(s).second) return fail(IoResult::Status::UserError, "site '" + s + "' is named twice");
    }
    if (request.out.empty()) return fail(IoResult::Status::UserError, "--out is empty");

    const fs::path out = request.out;
    std::error_code ec;
    fs::file_status st = fs::status(out, ec);
    if (fs::exists(st)) {
      if (!fs::is_directory(st)) return fail(IoResult::Status::UserError, out.string() + ": exists and is not a directory");
      bool empty = fs::directory_iterator(out, ec) == fs::directory_iterator();
      if (ec) return fail(IoResult::Status::UserError, out.string() + ": " + ec.message());
      if (!empty && !request.force)
        return fail(IoResult::Status::UserError,
                    out.string() + ": the directory is not empty; choose a new or empty one, or pass --force to "
                                   "write into it (files of the same name are replaced, others are kept)");
    } else {
      fs::create_directories(out, ec);
      if (ec) return fail(IoResult::Status::UserError, out.string() + ": cannot create the directory: " + ec.message());
    }
    Writer writer(request, task);
    return writer.run(summary);
  } catch (const std::exception& e) {
    return fail(IoResult::Status::InternalError, std::string("internal: ") + e.what());
  }
}

}  // namespace gyrus::io
