// Which site file a command reads, and what `gyrus run` takes from it.
#include "Site.h"

#include <filesystem>

namespace gyrus::driver {

namespace fs = std::filesystem;

SiteLoad loadSite(const std::string& configFlag, const std::string& experimentFile, SiteUse use) {
  SiteLoad s;
  Compilation& c = *s.diagnostics;
  std::string path = configFlag;
  if (path.empty()) {
    s.roots.searched = siteSearchPath(experimentFile);
    path = findSiteFile(experimentFile);
    if (path.empty()) return s;
  } else {
    std::error_code ec;
    if (!fs::exists(path, ec)) {
      c.diags.report(DiagKind::IoError, SourceRange{}, "--config '" + path + "': no such file");
      s.ok = false;
      return s;
    }
  }
  s.ok = loadSiteConfig(path, c.sources, c.diags, s.config);
  s.roots.folders = s.config.roots;
  s.roots.siteFile = path;
  (void)use;  // every key of the site file is honoured by run (ranks too, since data-parallel training)
  return s;
}

std::unique_ptr<Compilation> siteFailure(SiteLoad& site, const std::string& experimentFile) {
  std::unique_ptr<Compilation> c = std::move(site.diagnostics);
  std::string text, error;
  if (readFile(experimentFile, text, error)) c->mainFile = c->sources.add(experimentFile, std::move(text));
  else c->diags.report(DiagKind::IoError, SourceRange{}, error);
  return c;
}

void applySiteDefaults(const SiteConfig& site, bool givenStore, bool givenJobs, bool givenDevice, bool givenCache,
                       bool givenMemory, RunOptions& options) {
  if (!givenStore && site.store) options.store = *site.store;
  if (!givenJobs && site.jobs) options.jobs = static_cast<int>(*site.jobs);
  if (!givenDevice && site.device) options.device = *site.device;
  if (!givenCache && site.volumeCache) options.volumeCache = *site.volumeCache;
  if (!givenMemory && site.loaderMemory) options.loaderMemory = *site.loaderMemory;
}

}  // namespace gyrus::driver
