// Command-line parsing on top of Abseil flags, shared by the programs that take the plan flags
// (`fcp` in client/cli/, `fcp-worker` in worker/, bench/distributed_emulation).
//
// Flags are defined with ABSL_FLAG (underscored names, typed, with defaults and help) and parsed
// with Abseil's own value parsers, but this walker, not absl::ParseCommandLine, reads argv, so a
// program can (a) accept the documented dashed spellings (`--tokens-per-worker` for the flag
// tokens_per_worker), (b) restrict each subcommand to its own flags, and (c) report every problem
// as one Status naming the flag (the CLI prints it and exits 2) instead of Abseil's exit(1).
//
//   ASSIGN_OR_RETURN(ParsedArgs args, ParseArgs({argv + 2, argv + argc}, kPlanFlags));
//   if (args.Given("json")) ...
#ifndef FCP_WORKLOAD_FLAGS_H_
#define FCP_WORKLOAD_FLAGS_H_

#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace fcp::cli {

struct ParsedArgs {
  std::vector<std::string> positional;  // arguments that are not flags, in order
  std::set<std::string> given;          // underscored names of the flags that appeared
  bool help = false;                    // --help or -h appeared

  bool Given(absl::string_view name) const { return given.count(std::string(name)) > 0; }
};

// "--tokens-per-worker" style spelling of an underscored flag name.
std::string DashedFlag(absl::string_view name);

// Parses `args` (the words after the subcommand). Accepted forms: `--name=value`,
// `--name value`, `--bool_flag` (true), `--bool_flag=false`, `--nobool_flag`; `-` or `_` inside
// names; `--` ends the flags. `allowed` lists the underscored names of the registered ABSL_FLAGs
// this subcommand takes; each value is parsed into its flag. InvalidArgument naming the flag for
// an unknown flag, a missing value or a value its type rejects.
absl::StatusOr<ParsedArgs> ParseArgs(const std::vector<std::string>& args,
                                     const std::vector<absl::string_view>& allowed);

// Help lines of the named ABSL_FLAGs ("  --tokens-per-worker     help (default: 0)"); flags whose
// help says "(required)" get no default.
std::string FlagsHelp(const std::vector<absl::string_view>& names);

}  // namespace fcp::cli

#endif  // FCP_WORKLOAD_FLAGS_H_
