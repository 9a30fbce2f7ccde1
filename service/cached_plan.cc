#include "service/cached_plan.h"

#include <utility>

#include "fcp/v1/plan.pb.h"
#include "fcp/v1/planner.pb.h"
#include "google/protobuf/arena.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/wire_format_lite.h"
#include "proto/plan_convert.h"

namespace fcp {
namespace {

using google::protobuf::internal::WireFormatLite;

// Tag and length of a length-delimited field `number` holding `length` bytes.
std::string FieldHeader(int number, size_t length) {
  std::string out;
  const uint32_t tag = WireFormatLite::MakeTag(number, WireFormatLite::WIRETYPE_LENGTH_DELIMITED);
  out.resize(google::protobuf::io::CodedOutputStream::VarintSize32(tag) +
             google::protobuf::io::CodedOutputStream::VarintSize64(length));
  auto* p = reinterpret_cast<uint8_t*>(out.data());
  p = google::protobuf::io::CodedOutputStream::WriteVarint32ToArray(tag, p);
  google::protobuf::io::CodedOutputStream::WriteVarint64ToArray(length, p);
  return out;
}

// Bytes a worker slice takes in memory, and about as many again encoded.
size_t SliceBytes(const WorkerPlan& w) {
  size_t bytes =
      sizeof(WorkerPlan) + w.blocks.size() * sizeof(int32_t) + w.tiles.size() * sizeof(Tile);
  for (const auto* transfers : {&w.sends, &w.recvs}) {
    for (const Transfer& t : *transfers) bytes += sizeof(Transfer) + t.blocks.size() * 4;
  }
  return bytes;
}

}  // namespace

size_t EncodedResponse::size() const {
  size_t n = head.size() + tail.size();
  for (absl::string_view piece : pieces) n += piece.size();
  return n;
}

std::string EncodedResponse::Flatten() const {
  std::string out;
  out.reserve(size());
  out += head;
  for (absl::string_view piece : pieces) out.append(piece.data(), piece.size());
  out += tail;
  return out;
}

void CachedPlan::EncodeCommon(const Plan& plan) {
  google::protobuf::Arena arena;  // thousands of blocks and documents, freed at once
  auto* common = google::protobuf::Arena::CreateMessage<v1::Plan>(&arena);
  PlanToProto(plan, common);
  common->SerializeToString(&common_);
  worker_fields_.resize(num_workers_);
  worker_once_.reset(new absl::once_flag[num_workers_]);
}

CachedPlan::CachedPlan(Plan plan)
    : plan_(std::move(plan)), num_workers_(static_cast<int32_t>(plan_.workers.size())) {
  // Encode everything but the workers once; they are encoded per rank, on demand.
  std::vector<WorkerPlan> workers = std::move(plan_.workers);
  plan_.workers.clear();
  EncodeCommon(plan_);
  plan_.workers = std::move(workers);
  charge_bytes_ = sizeof(CachedPlan) + 2 * common_.size() + plan_.costs.size() * sizeof(WorkerCost);
  for (const WorkerPlan& w : plan_.workers) charge_bytes_ += 2 * SliceBytes(w);
}

CachedPlan::CachedPlan(std::shared_ptr<const PreparedPlan> prepared, std::string response_fields)
    : prepared_(std::move(prepared)),
      response_fields_(std::move(response_fields)),
      num_workers_(prepared_->num_workers()) {
  charge_bytes_ += response_fields_.size();
  EncodeCommon(prepared_->plan());
  // Not yet encoded slices are estimated from the plan's size: about 8 encoded bytes per tile
  // and per block id in a transfer (each remote KV block is named by a send and a recv, forward
  // and backward).
  const Plan& plan = prepared_->plan();
  const size_t slices = static_cast<size_t>(plan.summary.tiles) * 8 +
                        plan.blocks.size() * (sizeof(Block) + 4 * 8) +
                        static_cast<size_t>(num_workers_) * sizeof(WorkerPlan);
  charge_bytes_ +=
      sizeof(CachedPlan) + 2 * common_.size() + plan.costs.size() * sizeof(WorkerCost) + slices;
}

absl::string_view CachedPlan::WorkerField(int32_t rank) const {
  absl::call_once(worker_once_[rank], [this, rank] {
    v1::WorkerPlan proto;
    if (prepared_) {
      WorkerPlanToProto(prepared_->Slice(rank), &proto);
    } else {
      WorkerPlanToProto(plan_.workers[rank], &proto);
    }
    std::string body = proto.SerializeAsString();
    worker_fields_[rank] = FieldHeader(v1::Plan::kWorkersFieldNumber, body.size()) + body;
  });
  return worker_fields_[rank];
}

EncodedResponse CachedPlan::EncodeResponse(absl::Span<const int32_t> ranks, bool cache_hit) const {
  EncodedResponse out;
  out.pieces.reserve(1 + (ranks.empty() ? num_workers_ : ranks.size()));
  out.pieces.push_back(common_);
  if (ranks.empty()) {
    for (int32_t r = 0; r < num_workers(); ++r) out.pieces.push_back(WorkerField(r));
  } else {
    for (int32_t r : ranks) out.pieces.push_back(WorkerField(r));
  }
  size_t plan_bytes = 0;
  for (absl::string_view piece : out.pieces) plan_bytes += piece.size();
  out.head = FieldHeader(v1::PlanResponse::kPlanFieldNumber, plan_bytes);
  if (cache_hit) {
    static_assert(v1::PlanResponse::kCacheHitFieldNumber < 16, "a one-byte tag");
    out.tail.push_back(static_cast<char>(WireFormatLite::MakeTag(
        v1::PlanResponse::kCacheHitFieldNumber, WireFormatLite::WIRETYPE_VARINT)));
    out.tail.push_back(1);  // true
  }
  out.tail += response_fields_;
  return out;
}

}  // namespace fcp
