#include "service/planner/strategies/metis_library.h"

#include <dlfcn.h>

#include <string>

#include "absl/strings/str_cat.h"

namespace fcp {
namespace {

// The shared library of the METIS ABI metis.h declares (5.x: libmetis.so.5).
std::string MetisSoname() { return absl::StrCat("libmetis.so.", METIS_VER_MAJOR); }

absl::StatusOr<MetisLibrary> Load() {
  const std::string soname = MetisSoname();
  // Never closed: METIS stays loaded for the process's lifetime.
  void* metis = dlmopen(LM_ID_NEWLM, soname.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (metis == nullptr) {
    return absl::UnavailableError(
        absl::StrCat("dcp: cannot load ", soname, " (package libmetis5): ", dlerror()));
  }
  Lmid_t namespace_id = 0;
  if (dlinfo(metis, RTLD_DI_LMID, &namespace_id) != 0) {
    return absl::InternalError(absl::StrCat("dcp: dlinfo(", soname, "): ", dlerror()));
  }
  void* libc = dlmopen(namespace_id, "libc.so.6", RTLD_NOW | RTLD_NOLOAD);
  MetisLibrary library;
  library.set_default_options =
      reinterpret_cast<decltype(&METIS_SetDefaultOptions)>(dlsym(metis, "METIS_SetDefaultOptions"));
  library.part_graph_recursive = reinterpret_cast<decltype(&METIS_PartGraphRecursive)>(
      dlsym(metis, "METIS_PartGraphRecursive"));
  if (libc != nullptr) library.rand = reinterpret_cast<int (*)()>(dlsym(libc, "rand"));
  if (library.set_default_options == nullptr || library.part_graph_recursive == nullptr ||
      library.rand == nullptr) {
    return absl::InternalError(absl::StrCat("dcp: ", soname, " lacks METIS_SetDefaultOptions, ",
                                            "METIS_PartGraphRecursive or its C library's rand"));
  }
  return library;
}

}  // namespace

absl::StatusOr<const MetisLibrary*> LoadMetis() {
  static const auto* const loaded = new absl::StatusOr<MetisLibrary>(Load());
  if (!loaded->ok()) return loaded->status();
  return &**loaded;
}

}  // namespace fcp
