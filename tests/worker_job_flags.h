// The fcp-worker flags of a small CPU job for process tests: 4 q heads over 2 kv heads of 16,
// 512 tokens per rank, documents <= 1024 from the shared wikipedia lengths, one thread.
//
//   RunCli(FCP_WORKER, fcp::SmallWorkerJobFlags({"--world", "2", "--steps", "1"}));
#ifndef FCP_TESTS_WORKER_JOB_FLAGS_H_
#define FCP_TESTS_WORKER_JOB_FLAGS_H_

#include <string>
#include <vector>

namespace fcp {

// The flags above followed by `extra`. Needs FCP_SHARED_DIR defined for the including test.
inline std::vector<std::string> SmallWorkerJobFlags(const std::vector<std::string>& extra) {
  std::vector<std::string> args = {"--lengths",
                                   std::string(FCP_SHARED_DIR) + "/workloads/wikipedia.lengths",
                                   "--tokens-per-worker",
                                   "512",
                                   "--max-doc-len",
                                   "1024",
                                   "--heads",
                                   "4",
                                   "--kv-heads",
                                   "2",
                                   "--head-dim",
                                   "16",
                                   "--threads",
                                   "1"};
  args.insert(args.end(), extra.begin(), extra.end());
  return args;
}

}  // namespace fcp

#endif  // FCP_TESTS_WORKER_JOB_FLAGS_H_
