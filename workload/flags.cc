#include "workload/flags.h"

#include <algorithm>
#include <cstdint>

#include "absl/flags/commandlineflag.h"
#include "absl/flags/reflection.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/strip.h"

namespace fcp::cli {
namespace {

absl::CommandLineFlag* Lookup(const std::string& name,
                              const std::vector<absl::string_view>& allowed) {
  if (std::find(allowed.begin(), allowed.end(), name) == allowed.end()) return nullptr;
  return absl::FindCommandLineFlag(name);
}

const char* Expected(const absl::CommandLineFlag& flag) {
  if (flag.IsOfType<bool>()) return "true or false";
  if (flag.IsOfType<uint64_t>() || flag.IsOfType<uint32_t>()) return "a non-negative integer";
  if (flag.IsOfType<int32_t>() || flag.IsOfType<int64_t>()) return "an integer";
  if (flag.IsOfType<double>() || flag.IsOfType<float>()) return "a number";
  return "a valid value";
}

absl::Status Invalid(absl::string_view flag, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(DashedFlag(flag), ": ", what));
}

}  // namespace

std::string DashedFlag(absl::string_view name) {
  return absl::StrCat("--", absl::StrReplaceAll(name, {{"_", "-"}}));
}

absl::StatusOr<ParsedArgs> ParseArgs(const std::vector<std::string>& args,
                                     const std::vector<absl::string_view>& allowed) {
  ParsedArgs out;
  for (size_t i = 0; i < args.size(); ++i) {
    absl::string_view arg = args[i];
    if (arg == "--") {
      out.positional.insert(out.positional.end(), args.begin() + i + 1, args.end());
      break;
    }
    if (arg == "-h" || arg == "--help" || arg == "-help") {
      out.help = true;
      continue;
    }
    if (arg.size() < 2 || arg[0] != '-') {
      out.positional.emplace_back(arg);
      continue;
    }
    if (!absl::ConsumePrefix(&arg, "--")) absl::ConsumePrefix(&arg, "-");
    const size_t eq = arg.find('=');
    const bool has_value = eq != absl::string_view::npos;
    std::string name = absl::StrReplaceAll(arg.substr(0, eq), {{"-", "_"}});
    std::string value = has_value ? std::string(arg.substr(eq + 1)) : "";

    absl::CommandLineFlag* flag = Lookup(name, allowed);
    if (flag == nullptr && absl::StartsWith(name, "no")) {
      absl::CommandLineFlag* positive = Lookup(name.substr(2), allowed);
      if (positive != nullptr && positive->IsOfType<bool>()) {
        if (has_value) return Invalid(name, "takes no value");
        flag = positive;
        name = name.substr(2);
        value = "false";
      }
    }
    if (flag == nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat("unknown flag ", DashedFlag(name), " (see --help)"));
    }
    if (flag->IsOfType<bool>()) {
      if (!has_value && value.empty()) value = "true";
    } else if (!has_value) {
      if (i + 1 >= args.size()) return Invalid(name, "missing value");
      value = args[++i];
    }
    std::string error;
    if (!flag->ParseFrom(value, &error)) {
      return Invalid(name, absl::StrCat("expected ", Expected(*flag), ", got '", value, "'"));
    }
    out.given.insert(name);
  }
  return out;
}

std::string FlagsHelp(const std::vector<absl::string_view>& names) {
  std::string out;
  for (absl::string_view name : names) {
    const absl::CommandLineFlag* flag = absl::FindCommandLineFlag(name);
    if (flag == nullptr) continue;
    const std::string help = flag->Help();
    std::string def = flag->DefaultValue();
    if (def.empty()) def = "none";
    absl::StrAppendFormat(
        &out, "  %-24s %s%s\n", DashedFlag(name), help,
        absl::StrContains(help, "(required)") ? "" : absl::StrCat(" (default: ", def, ")"));
  }
  return out;
}

}  // namespace fcp::cli
