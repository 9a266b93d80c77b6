// Folder data sets (see Data.h).
#include "gyrus/Data.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fnmatch.h>
#include <map>
#include <fstream>
#include <sstream>

#include "FileDigest.h"

namespace gyrus {
namespace {

namespace fs = std::filesystem;

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// "t1.nii.gz" -> "t1"; "" when not a NIfTI file name.
std::string niftiStem(const std::string& name) {
  for (const char* ext : {".nii.gz", ".nii"}) {
    std::string e(ext);
    if (name.size() > e.size() && name.compare(name.size() - e.size(), e.size(), e) == 0)
      return name.substr(0, name.size() - e.size());
  }
  return {};
}

// Directory listings; an unreadable directory is an error (never a silent skip).
std::vector<fs::path> sortedDirs(const fs::path& p, std::string& error) {
  std::vector<fs::path> out;
  std::error_code ec;
  for (fs::directory_iterator it(p, ec), end; !ec && it != end; it.increment(ec))
    if (it->is_directory(ec)) out.push_back(it->path());
  if (ec && error.empty()) error = "cannot list '" + p.string() + "': " + ec.message();
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<fs::path> sortedNifti(const fs::path& p, std::string& error) {
  std::vector<fs::path> out;
  std::error_code ec;
  for (fs::directory_iterator it(p, ec), end; !ec && it != end; it.increment(ec))
    if (it->is_regular_file(ec) && !niftiStem(it->path().filename().string()).empty()) out.push_back(it->path());
  if (ec && error.empty()) error = "cannot list '" + p.string() + "': " + ec.message();
  std::sort(out.begin(), out.end());
  return out;
}

// Adds a file's identity: its path relative to the root, its size and a digest of its
// content (cached; FileDigest.h). Where the data lie and when they were copied are not
// part of it.
void fingerprintFile(std::string& material, const fs::path& root, const fs::path& file) {
  std::error_code ec;
  auto size = fs::file_size(file, ec);
  std::string error;
  std::string digest = fileDigest(file, error);
  material += fs::relative(file, root, ec).string() + " " + std::to_string(ec ? 0 : size) + " " +
              (digest.empty() ? "unreadable" : digest) + "\n";
}

// A CSV or TSV table with a header row: column name -> values, row by row.
struct Table {
  std::vector<std::string> header;
  std::vector<std::vector<std::string>> rows;
  std::vector<int> lines;  ///< the file's line number of each row
  int column(const std::string& name) const {
    for (size_t i = 0; i < header.size(); ++i)
      if (lower(header[i]) == lower(name)) return static_cast<int>(i);
    return -1;
  }
};

std::string trim(std::string s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.pop_back();
  size_t i = 0;
  while (i < s.size() && std::isspace(static_cast<unsigned char>(s[i]))) ++i;
  s = s.substr(i);
  if (s.size() >= 2 && s.front() == '"' && s.back() == '"') s = s.substr(1, s.size() - 2);
  return s;
}

DataProblem readTable(const fs::path& path, Table& t) {
  std::ifstream in(path);
  if (!in) return {"cannot read the table '" + path.string() + "'", ""};
  std::string line;
  char sep = path.extension() == ".csv" ? ',' : '\t';
  bool first = true;
  int number = 0;
  while (std::getline(in, line)) {
    ++number;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (trim(line).empty()) continue;
    std::vector<std::string> cells;
    std::stringstream ss(line);
    for (std::string cell; std::getline(ss, cell, sep);) cells.push_back(trim(cell));
    if (first) {
      t.header = cells;
      first = false;
    } else {
      t.rows.push_back(cells);
      t.lines.push_back(number);
    }
  }
  if (t.header.empty()) return {"the table '" + path.string() + "' is empty", ""};
  return {};
}

// Parses a label; an empty string when it is fine, else why not.
std::string parseLabel(const std::string& text, ir::LabelKind kind, double& value) {
  char* end = nullptr;
  value = std::strtod(text.c_str(), &end);
  std::string rest = end != nullptr ? std::string(end) : std::string();
  bool clean = end != text.c_str() && std::all_of(rest.begin(), rest.end(), [](char c) {
                 return std::isspace(static_cast<unsigned char>(c)) != 0;
               });
  if (!clean || !std::isfinite(value)) return "is not a number ('" + text.substr(0, 40) + "')";
  if (kind == ir::LabelKind::Binary && value != 0.0 && value != 1.0)
    return "is " + ir::formatNumber(value) + ", but a binary label must be 0 or 1";
  return {};
}

// The first of several problems, with the others' messages in `more`.
DataProblem firstOf(const std::vector<DataProblem>& problems) {
  DataProblem first = problems.front();
  for (size_t i = 1; i < problems.size(); ++i) first.more.push_back(problems[i].message);
  return first;
}

DataProblem checkRoot(const std::string& root, fs::path& abs) {
  std::error_code ec;
  abs = fs::absolute(root, ec);
  if (!fs::is_directory(abs, ec)) return {"data folder '" + root + "' does not exist or is not a directory", ""};
  abs = fs::canonical(abs, ec);
  return {};
}

/// Checks `root` (its absolute path goes to `abs`) and starts `out` afresh as a folder of
/// `layout` there; only the caller's skipUnreadable choice is kept.
DataProblem startFolder(const std::string& root, ir::FolderData::Layout layout, ir::FolderData& out, fs::path& abs) {
  if (DataProblem p = checkRoot(root, abs); !p.ok()) return p;
  const bool skip = out.skipUnreadable;
  out = {};
  out.skipUnreadable = skip;
  out.layout = layout;
  out.root = abs.string();
  return {};
}

/// One table row's label for a subject: its value, or why it has none.
struct LabelRow {
  double value = 0;
  int line = 0;
  std::string problem;  ///< empty when the value is usable
};

/// A subject's label from its rows: usable when at least one row has a value and all
/// rows with values agree; a conflict when they do not. `why` says which lines.
struct LabelChoice {
  bool usable = false, conflict = false;
  double value = 0;
  std::string why;
};

LabelChoice chooseLabel(const std::vector<LabelRow>& rows) {
  LabelChoice c;
  const LabelRow* first = nullptr;
  for (const LabelRow& r : rows) {
    if (!r.problem.empty()) continue;
    if (first == nullptr) {
      first = &r;
      c.usable = true;
      c.value = r.value;
    } else if (r.value != first->value) {
      c.conflict = true;
      c.why = ir::formatNumber(first->value) + " on line " + std::to_string(first->line) + ", " +
              ir::formatNumber(r.value) + " on line " + std::to_string(r.line);
      return c;
    }
  }
  if (!c.usable)
    for (const LabelRow& r : rows)
      if (r.problem != "is empty") {  // the most telling reason: a value that is there but wrong
        c.why = "on line " + std::to_string(r.line) + " it " + r.problem;
        break;
      }
  if (!c.usable && c.why.empty() && !rows.empty()) c.why = "on line " + std::to_string(rows.front().line) + " it is empty";
  return c;
}

}  // namespace

DataProblem resolveGlob(const std::string& root, const std::string& glob, const std::string& table,
                        const std::string& subjectColumn, const std::string& labelColumn, ir::LabelKind kind,
                        ir::FolderData& out) {
  fs::path abs;
  if (DataProblem p = startFolder(root, ir::FolderData::Layout::Glob, out, abs); !p.ok()) return p;
  out.glob = glob;
  std::vector<fs::path> files;
  std::vector<DataProblem> broken;
  std::error_code ec;
  // Symbolic links are followed, to files and to folders, like fomo60k() and fomo25() do;
  // paths stay those under the root (the glob matches them, not the links' targets). A
  // link that leads nowhere is a problem, never a silent drop.
  const auto options = fs::directory_options::skip_permission_denied | fs::directory_options::follow_directory_symlink;
  for (fs::recursive_directory_iterator it(abs, options, ec), end; !ec && it != end; it.increment(ec)) {
    std::error_code entryError;
    std::string rel = it->path().lexically_relative(abs).string();
    if (fnmatch(glob.c_str(), rel.c_str(), FNM_PATHNAME) != 0) continue;
    if (it->is_regular_file(entryError)) {
      files.push_back(it->path());
    } else if (it->is_symlink(entryError) && !fs::exists(it->path(), entryError)) {
      broken.push_back({"'" + rel + "' is a symbolic link to '" + fs::read_symlink(it->path(), entryError).string() +
                            "', which does not exist",
                        "gyrus follows symbolic links; fix or remove the broken one"});
    }
  }
  if (ec) return {"cannot list '" + root + "': " + ec.message(), ""};
  if (!broken.empty()) return firstOf(broken);
  std::sort(files.begin(), files.end());
  if (files.empty())
    return {"no file in '" + root + "' matches '" + glob + "'", "the pattern is matched against paths relative to the "
                                                                "folder, e.g. \"*/anat/*_T1w.nii.gz\""};
  // Every row of each subject: a subject's label must be one number, however many rows
  // it has (two rows that disagree are an error, never last-row-wins).
  std::map<std::string, std::vector<LabelRow>> labels;
  if (!table.empty()) {
    Table t;
    if (DataProblem p = readTable(abs / table, t); !p.ok()) return p;
    int sc = t.column(subjectColumn), lc = t.column(labelColumn);
    std::string cols;
    for (const std::string& h : t.header) cols += (cols.empty() ? "" : ", ") + h;
    if (sc < 0) return {"the table '" + table + "' has no column '" + subjectColumn + "'", "its columns: " + cols};
    if (lc < 0) return {"the table '" + table + "' has no column '" + labelColumn + "'", "its columns: " + cols};
    for (size_t r = 0; r < t.rows.size(); ++r) {
      const auto& row = t.rows[r];
      if (row.size() <= static_cast<size_t>(sc) || row[static_cast<size_t>(sc)].empty()) continue;
      LabelRow entry;
      entry.line = t.lines[r];
      const std::string text = row.size() > static_cast<size_t>(lc) ? row[static_cast<size_t>(lc)] : std::string();
      entry.problem = text.empty() ? "is empty" : parseLabel(text, kind, entry.value);
      labels[row[static_cast<size_t>(sc)]].push_back(entry);
    }
    out.hasLabel = true;
    out.labelKind = kind;
    out.labelName = labelColumn;
  }
  std::string material = "glob " + glob + "\n";
  std::vector<DataProblem> unlabelled;
  for (const fs::path& f : files) {
    ir::FolderSample s;
    fs::path rel = f.lexically_relative(abs);
    s.subject = rel.has_parent_path() ? rel.begin()->string() : niftiStem(rel.filename().string());
    if (s.subject.empty()) s.subject = rel.stem().string();
    s.files.push_back(f.string());
    fingerprintFile(material, abs, f);
    if (out.hasLabel) {
      auto it = labels.find(s.subject);
      const std::string where = "'" + table + "'";
      const LabelChoice choice = it == labels.end() ? LabelChoice{} : chooseLabel(it->second);
      if (choice.conflict) {
        unlabelled.push_back({"subject '" + s.subject + "' has rows in " + where + " with different '" + labelColumn +
                                  "': " + choice.why,
                              "keep one row per subject, or one value (the subject of " + rel.string() +
                                  " is its first path component)"});
        continue;
      }
      if (!choice.usable) {
        const std::string why = "no usable '" + labelColumn + "' for subject '" + s.subject + "' in " + where +
                                (choice.why.empty() ? std::string() : ": " + choice.why);
        if (out.skipUnreadable) {
          out.skipped.push_back({s.subject, why});
          material += "skipped " + s.subject + "\n";
          continue;
        }
        unlabelled.push_back({why, "the subject of " + rel.string() + " is its first path component; the table needs a "
                                       "row with " + subjectColumn + " = " + s.subject + " and a " +
                                       (kind == ir::LabelKind::Binary ? std::string("0 or 1") : std::string("number")) +
                                       " in " + labelColumn});
        continue;
      }
      s.label = choice.value;
      material += s.subject + " label " + ir::formatNumber(s.label) + "\n";
    }
    out.samples.push_back(std::move(s));
  }
  if (!unlabelled.empty()) return firstOf(unlabelled);
  if (out.samples.empty())
    return {"every file under '" + root + "' is skipped; the first: " + out.skipped.front().reason, ""};
  out.fingerprint = ir::sha256Hex(material);
  return {};
}

DataProblem readSites(const std::string& table, ir::FolderData& data) {
  fs::path path = fs::path(data.root) / (table.empty() ? std::string("sites.tsv") : table);
  std::error_code ec;
  if (table.empty() && !fs::exists(path, ec)) return {};
  Table t;
  if (DataProblem p = readTable(path, t); !p.ok()) return p;
  int sc = t.column("subject"), st = t.column("site");
  if (sc < 0 || st < 0) return {"the sites table '" + path.string() + "' needs the columns subject and site", ""};
  std::map<std::string, std::string> site;
  std::map<std::string, int> siteLine;
  for (size_t r = 0; r < t.rows.size(); ++r) {
    const auto& row = t.rows[r];
    if (row.size() <= static_cast<size_t>(std::max(sc, st))) continue;
    const std::string& subject = row[static_cast<size_t>(sc)];
    const std::string& value = row[static_cast<size_t>(st)];
    auto [at, fresh] = site.emplace(subject, value);
    if (fresh) {
      siteLine[subject] = t.lines[r];
    } else if (at->second != value) {
      return {"subject '" + subject + "' has two sites in '" + path.string() + "': '" + at->second + "' on line " +
                  std::to_string(siteLine[subject]) + ", '" + value + "' on line " + std::to_string(t.lines[r]),
              "keep one row per subject"};
    }
  }
  std::string material = data.fingerprint + "\n";
  std::vector<DataProblem> missing;
  for (ir::FolderSample& s : data.samples) {
    auto it = site.find(s.subject);
    if (it == site.end()) {
      missing.push_back({"subject '" + s.subject + "' has no site in '" + path.string() + "'",
                         "add a row: " + s.subject + "\t<site>"});
      continue;
    }
    s.site = it->second;
    material += s.subject + " site " + s.site + "\n";
  }
  if (!missing.empty()) return firstOf(missing);
  data.fingerprint = ir::sha256Hex(material);
  return {};
}

DataProblem resolveFomo60k(const std::string& root, const std::vector<std::string>& sequences, ir::FolderData& out) {
  fs::path abs;
  if (DataProblem p = startFolder(root, ir::FolderData::Layout::Fomo60k, out, abs); !p.ok()) return p;
  out.channels = sequences;
  std::vector<std::string> wanted;
  for (const std::string& s : sequences) wanted.push_back(lower(s));
  std::string material = "fomo60k\n";
  size_t scans = 0;
  std::string listError;
  for (const fs::path& subject : sortedDirs(abs, listError)) {
    for (const fs::path& session : sortedDirs(subject, listError)) {
      for (const fs::path& file : sortedNifti(session, listError)) {
        ++scans;
        std::string seq = lower(niftiStem(file.filename().string()));
        if (!wanted.empty() && std::find(wanted.begin(), wanted.end(), seq) == wanted.end()) continue;
        ir::FolderSample s;
        s.subject = subject.filename().string();
        s.session = session.filename().string();
        s.files.push_back(file.string());
        fingerprintFile(material, abs, file);
        out.samples.push_back(std::move(s));
      }
    }
  }
  if (!listError.empty()) return {listError, "gyrus reads every folder of a data set; fix the permissions"};
  if (out.samples.empty()) {
    if (scans == 0)
      return {"no scans found in '" + root + "'",
              "a fomo60k folder holds <subject>/<session>/<sequence>.nii.gz, e.g. sub_1/ses_1/t1.nii.gz"};
    return {"none of the " + std::to_string(scans) + " scans in '" + root + "' is one of the requested sequences",
            "sequences are file names without extension, e.g. \"t1\" for t1.nii.gz"};
  }
  out.fingerprint = ir::sha256Hex(material);
  return {};
}

DataProblem resolveFomo25(const std::string& root, const std::vector<std::string>& channels, ir::LabelKind kind,
                          ir::FolderData& out) {
  fs::path abs;
  if (DataProblem p = startFolder(root, ir::FolderData::Layout::Fomo25, out, abs); !p.ok()) return p;
  out.channels = channels;
  out.hasLabel = true;
  out.labelKind = kind;
  fs::path images = abs / "preprocessed";
  fs::path labels = abs / "labels";
  std::error_code ec;
  if (!fs::is_directory(images, ec))
    return {"'" + root + "' has no preprocessed/ folder", "a FOMO25 task folder holds preprocessed/sub_N/ses_1/*.nii.gz "
                                                          "and labels/sub_N/ses_1/label.txt"};
  std::string material = "fomo25\n";
  std::string listError;
  std::vector<DataProblem> unusable;  // sessions that cannot be samples (without skip_unreadable)
  for (const fs::path& subject : sortedDirs(images, listError)) {
    for (const fs::path& session : sortedDirs(subject, listError)) {
      // One session: its sample, or why it cannot be one.
      auto readSession = [&]() -> DataProblem {
      ir::FolderSample s;
      s.subject = subject.filename().string();
      s.session = session.filename().string();
      std::vector<fs::path> present = sortedNifti(session, listError);
      for (const std::string& channel : channels) {
        // Alternatives: "swi|t2s".
        std::vector<std::string> options;
        std::stringstream ss(channel);
        for (std::string o; std::getline(ss, o, '|');) options.push_back(lower(o));
        const fs::path* found = nullptr;
        for (const std::string& o : options) {
          for (const fs::path& f : present)
            if (lower(niftiStem(f.filename().string())) == o) found = &f;
          if (found != nullptr) break;
        }
        if (found == nullptr) {
          std::string have;
          for (const fs::path& f : present) have += (have.empty() ? "" : ", ") + f.filename().string();
          return {"session '" + fs::relative(session, abs, ec).string() + "' has no channel '" + channel + "'",
                  "it has: " + (have.empty() ? std::string("no NIfTI files") : have)};
        }
        s.files.push_back(found->string());
        fingerprintFile(material, abs, *found);
      }
      if (kind == ir::LabelKind::Mask) {
        fs::path dir = labels / s.subject / s.session;
        fs::path mask;
        for (const char* name : {"seg.nii.gz", "seg.nii"})
          if (fs::is_regular_file(dir / name, ec)) mask = dir / name;
        if (mask.empty()) {
          return {"missing segmentation for '" + s.subject + "/" + s.session + "'",
                  "expected " + fs::relative(dir, abs, ec).string() + "/seg.nii.gz (a {0,1} mask on the images' grid)"};
        }
        s.mask = mask.string();
        fingerprintFile(material, abs, mask);
        out.samples.push_back(std::move(s));
        return {};
      }
      fs::path labelFile = labels / s.subject / s.session / "label.txt";
      std::ifstream in(labelFile);
      if (!in) {
        return {"missing label for '" + s.subject + "/" + s.session + "'",
                "expected " + fs::relative(labelFile, abs, ec).string() + " holding one number"};
      }
      std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
      double value = 0;
      if (std::string why = parseLabel(trim(text), kind, value); !why.empty()) {
        return {"the label of '" + s.subject + "/" + s.session + "' " + why,
                kind == ir::LabelKind::Binary ? "declare the data set with label = regression for continuous labels"
                                              : fs::relative(labelFile, abs, ec).string() + " must hold one number"};
      }
      s.label = value;
      material += s.subject + "/" + s.session + " label " + ir::formatNumber(value) + "\n";
      out.samples.push_back(std::move(s));
      return {};
      };
      if (DataProblem p = readSession(); !p.ok()) {
        if (!out.skipUnreadable) {
          unusable.push_back(p);
          continue;
        }
        std::string name = subject.filename().string() + "/" + session.filename().string();
        out.skipped.push_back({name, p.message + (p.note.empty() ? "" : " (" + p.note + ")")});
        material += "skipped " + name + "\n";
      }
    }
  }
  if (!listError.empty()) return {listError, "gyrus reads every folder of a data set; fix the permissions"};
  if (!unusable.empty()) return firstOf(unusable);
  if (out.samples.empty() && !out.skipped.empty())
    return {"every session in '" + root + "' is skipped; the first: " + out.skipped.front().name + ": " +
                out.skipped.front().reason,
            ""};
  if (out.samples.empty())
    return {"no sessions found in '" + root + "/preprocessed'", "expected preprocessed/sub_N/ses_1/<channel>.nii.gz"};
  out.fingerprint = ir::sha256Hex(material);
  return {};
}

}  // namespace gyrus

namespace gyrus {

std::string FolderRequest::key() const {
  // Length-prefixed fields: no two requests share a key.
  std::string k;
  auto add = [&k](const std::string& field) { k += std::to_string(field.size()) + ":" + field; };
  add(std::to_string(static_cast<int>(layout)));
  add(root);
  add(std::to_string(names.size()));
  for (const std::string& n : names) add(n);
  add(std::to_string(static_cast<int>(label)));
  add(glob);
  add(table);
  add(subjectColumn);
  add(labelColumn);
  add(sites);
  add(skipUnreadable ? "1" : "0");
  return k;
}

DataProblem FileDataResolver::resolve(const FolderRequest& r, ir::FolderData& out) {
  out = {};
  out.skipUnreadable = r.skipUnreadable;
  DataProblem p;
  switch (r.layout) {
    case ir::FolderData::Layout::Fomo60k: p = resolveFomo60k(r.root, r.names, out); break;
    case ir::FolderData::Layout::Fomo25: p = resolveFomo25(r.root, r.names, r.label, out); break;
    case ir::FolderData::Layout::Glob:
      p = resolveGlob(r.root, r.glob, r.table, r.subjectColumn, r.labelColumn, r.label, out);
      break;
  }
  if (p.ok()) p = readSites(r.sites, out);
  return p;
}

DataProblem CachingDataResolver::resolve(const FolderRequest& request, ir::FolderData& out) {
  std::string key = request.key();
  auto it = cache_.find(key);
  if (it == cache_.end()) {
    ir::FolderData data;
    DataProblem p = inner_.resolve(request, data);
    it = cache_.emplace(std::move(key), std::make_pair(std::move(p), std::move(data))).first;
  }
  out = it->second.second;
  return it->second.first;
}

DataResolver& defaultDataResolver() {
  static FileDataResolver files;
  return files;
}

}  // namespace gyrus

namespace gyrus {

DataProblem DataResolver::weights(const std::string& path, ir::WeightsFile& out, st::Header& header) {
  std::error_code ec;
  if (!fs::is_regular_file(path, ec))
    return {"weights file '" + path + "' does not exist",
            "write one with `gyrus export --store DIR STAGE --format safetensors --out FILE`"};
  std::string error;
  if (!st::readHeader(path, header, error)) return {error, "weights(...) reads safetensors files"};
  out.path = path;
  out.sha256 = fileDigest(path, error);
  if (out.sha256.empty()) return {error, ""};
  return {};
}

}  // namespace gyrus
