#include "worker/verify/dump.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/status_macros.h"

namespace fcp {
namespace {

absl::Status WriteFile(const std::string& path, const void* data, size_t bytes) {
  std::unique_ptr<FILE, int (*)(FILE*)> f(std::fopen(path.c_str(), "wb"), &std::fclose);
  if (f == nullptr || std::fwrite(data, 1, bytes, f.get()) != bytes || std::fflush(f.get()) != 0) {
    return absl::InternalError(absl::StrCat(path, ": ", std::strerror(errno)));
  }
  return absl::OkStatus();
}

absl::Status WriteFloats(const std::string& path, const std::vector<float>& v) {
  static_assert(sizeof(float) == 4, "float32 files");
  return WriteFile(path, v.data(), v.size() * sizeof(float));  // x86/ARM: little-endian
}

std::string MaskJson(const Mask& mask) {
  std::string json = absl::StrCat("{\"kind\": \"", MaskKindName(mask.kind), "\"");
  if (mask.kind == MaskKind::kSlidingWindow) absl::StrAppend(&json, ", \"window\": ", mask.window);
  if (mask.kind == MaskKind::kPrefixLm) absl::StrAppend(&json, ", \"prefix\": ", mask.prefix);
  return json + "}";
}

}  // namespace

std::string DumpManifestJson(const Plan& plan, const WorkerPlan& worker,
                             const kernels::AttentionShape& shape, int64_t step) {
  std::vector<std::string> documents, blocks;
  for (const Document& d : plan.documents) {
    documents.push_back(
        absl::StrCat("{\"length\": ", d.length, ", \"mask\": ", MaskJson(d.mask), "}"));
  }
  for (int32_t id : worker.blocks) {
    const Block& b = plan.blocks[id];
    blocks.push_back(absl::StrCat("{\"document\": ", b.document, ", \"begin\": ", b.begin,
                                  ", \"end\": ", b.end, "}"));
  }
  return absl::StrCat("{\n  \"rank\": ", worker.rank, ",\n  \"q_heads\": ", shape.q_heads,
                      ",\n  \"kv_heads\": ", shape.kv_heads, ",\n  \"head_dim\": ", shape.head_dim,
                      ",\n  \"plan_id\": \"", plan.plan_id, "\",\n  \"step\": ", step,
                      ",\n  \"documents\": [\n    ", absl::StrJoin(documents, ",\n    "),
                      "\n  ],\n  \"blocks\": [\n    ", absl::StrJoin(blocks, ",\n    "),
                      "\n  ]\n}\n");
}

absl::Status DumpStep(const std::string& dir, const Plan& plan, int32_t rank,
                      const kernels::AttentionShape& shape, int64_t step, const StepInputs& in,
                      const LocalOutputs& out) {
  const WorkerPlan* worker = plan.FindWorker(rank);
  if (worker == nullptr) return absl::NotFoundError("dump: no slice for this rank");
  const std::string path = absl::StrCat(dir, "/step", step, "/rank", rank);
  std::error_code ec;
  std::filesystem::create_directories(path, ec);
  if (ec) return absl::InternalError(absl::StrCat(path, ": ", ec.message()));
  const std::pair<const char*, const std::vector<float>*> tensors[] = {
      {"q", &in.q},      {"k", &in.k},    {"v", &in.v},    {"do", &in.d_o}, {"o", &out.o},
      {"lse", &out.lse}, {"dq", &out.dq}, {"dk", &out.dk}, {"dv", &out.dv}};
  for (const auto& [name, data] : tensors) {
    RETURN_IF_ERROR(WriteFloats(absl::StrCat(path, "/", name, ".f32"), *data));
  }
  const std::string manifest = DumpManifestJson(plan, *worker, shape, step);
  return WriteFile(path + "/manifest.json", manifest.data(), manifest.size());
}

}  // namespace fcp
