/* fcp C API, execution: run a plan's attention inside a trainer, on the trainer's own tensors.
 * Included by fcp/c_api.h (same conventions: opaque handles, status codes = absl codes, messages
 * in caller-owned fcp_error structs, every fcp_error* may be NULL), exported from libfcp.so.
 *
 *   fcp_executor_options options;
 *   fcp_executor_options_init(&options);
 *   options.rank = rank; options.world_size = world;
 *   options.rendezvous = "file:/shared/run3"; options.job_id = "run3";
 *   fcp_executor* ex = NULL;
 *   if (fcp_executor_new(&options, &ex, &error) != FCP_OK) die(error.message);
 *   // plan: fcp_client_plan_masked with ranks NULL (every rank gets the same plan)
 *   int64_t n = 0;
 *   fcp_plan_rank_tokens(plan, rank, NULL, NULL, 0, &n, &error);  // this rank's rows
 *   ... fill q, k, v with the rows of fcp_plan_rank_tokens' global indices, in that order ...
 *   fcp_context* ctx = NULL;
 *   fcp_forward(ex, plan, step, &shape, n, q, k, v, o, lse, NULL, &ctx, &error);
 *   fcp_backward(ex, ctx, d_o, dq, dk, dv, NULL, &error);
 *   fcp_context_free(ctx);
 *   fcp_executor_free(ex);
 *
 * Thread-safety: an executor runs one call at a time (calls from several threads are serialized);
 * every rank must make the same sequence of collective calls (forward, backward, gather,
 * scatter_add) with the same plans and steps. Bad arguments return FCP_INVALID_ARGUMENT with a
 * message naming the argument (e.g. "shape.head_dim: ..."), before anything is sent to a peer. A
 * peer that is gone or does not answer within timeout_seconds fails the call (DEADLINE_EXCEEDED
 * or UNAVAILABLE, naming the peer); the executor should then be freed.
 */
#ifndef FCP_CLIENT_INCLUDE_FCP_C_EXEC_API_H_
#define FCP_CLIENT_INCLUDE_FCP_C_EXEC_API_H_

#include <stddef.h>
#include <stdint.h>

#include "fcp/c_api.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- Batches with masks (fcp_batch is causal-only; this keeps its layout) ---- */
typedef enum fcp_mask_kind {
  FCP_MASK_CAUSAL = 0,         /* j <= i */
  FCP_MASK_FULL = 1,           /* every pair of the document */
  FCP_MASK_SLIDING_WINDOW = 2, /* 0 <= i - j < window (window >= 1) */
  FCP_MASK_PREFIX_LM = 3       /* j < prefix or j <= i (prefix >= 0) */
} fcp_mask_kind;
typedef struct fcp_mask {
  int32_t kind; /* an fcp_mask_kind */
  int64_t window;
  int64_t prefix;
} fcp_mask;
/* Like fcp_client_plan, with one mask per document (masks NULL = all causal). */
int fcp_client_plan_masked(fcp_client* client, const fcp_batch* batch, const fcp_mask* masks,
                           fcp_plan** plan, fcp_error* error);
/* fcp_client_plan_masked for `model` (fcp_model, c_api.h; NULL = the defaults): what
 * fcp_torch.Model sends. */
int fcp_client_plan_masked_model(fcp_client* client, const fcp_batch* batch, const fcp_mask* masks,
                                 const fcp_model* model, fcp_plan** plan, fcp_error* error);
/* fcp_client_prefetch_model (c_api.h) of a batch with per-document masks (as above; NULL = all
 * causal): fcp_client_get collects it. */
int fcp_client_prefetch_masked_model(fcp_client* client, const fcp_batch* batch,
                                     const fcp_mask* masks, const fcp_model* model,
                                     fcp_error* error);

/* ---- Token dispatch ----
 * Global token index g: the tokens of the batch's documents concatenated in request order.
 * For rank `rank` (one of the plan's slices: a plan requested with ranks NULL holds every rank's;
 * INVALID_ARGUMENT naming `rank` otherwise): its rows in local order, the order the executor
 * expects q/k/v rows in. global_index[i] = the global index of local row i, position[i] = its
 * position within its document (for RoPE). Documents are never padded: the counts of all ranks
 * add up to the batch's total tokens.
 * Count only: pass NULL arrays and capacity 0; *count receives the number of rows. With arrays,
 * capacity must be >= that number (else INVALID_ARGUMENT naming `capacity`, *count set). */
int fcp_plan_rank_tokens(const fcp_plan* plan, int32_t rank, int64_t* global_index,
                         int64_t* position, int64_t capacity, int64_t* count, fcp_error* error);

/* ---- Execution ---- */
typedef struct fcp_executor fcp_executor;
typedef struct fcp_context fcp_context; /* what backward needs from one forward */

/* The trainer's own key-value store (e.g. torch.distributed's c10d Store), used for rendezvous.
 * Callbacks may be called from any thread of the library, only during fcp_executor_new. */
typedef struct fcp_store {
  void* context;
  /* 0 on success. */
  int (*set)(void* context, const char* key, const void* value, size_t size);
  /* Waits up to timeout_seconds for key; copies min(size, capacity) bytes into value, *size = the
   * value's full size (the caller retries with a larger buffer when *size > capacity). 0 on
   * success, nonzero on timeout or error. */
  int (*get)(void* context, const char* key, void* value, size_t capacity, size_t* size,
             double timeout_seconds);
} fcp_store;

typedef struct fcp_executor_options {
  int32_t rank;
  int32_t world_size;
  const char* transport;         /* "gloo" (default), "nccl" (device "cuda" only); "loopback"
                                    only with world_size 1 */
  const fcp_store* store;        /* the trainer's store; or NULL and rendezvous: */
  const char* rendezvous;        /* "file:DIR" or "coordinator:HOST:PORT" */
  const char* job_id;            /* key prefix in the store, metrics label training_job */
  const char* device;            /* "cpu" (default) or "cuda" */
  int32_t cuda_device;           /* ordinal, device "cuda" */
  const char* interface_address; /* gloo: this rank's address (default 127.0.0.1) */
  double timeout_seconds;        /* a peer that does not answer fails the call (default 300) */
  int32_t threads;               /* CPU kernels (0 = hardware concurrency) */
  int32_t metrics_port;          /* >0: Prometheus endpoint with the fcp_worker_* metrics */
  const char* job_token;         /* rendezvous "coordinator:...": sent as `authorization: Bearer
                                    TOKEN` to a coordinator started with --job-tokens (a token of
                                    job_id); NULL or "" = $FCP_JOB_TOKEN if set, else none */
} fcp_executor_options;
void fcp_executor_options_init(fcp_executor_options* options);
/* Collective: every rank of world_size calls it; returns once all have met (or timeout). */
int fcp_executor_new(const fcp_executor_options* options, fcp_executor** executor,
                     fcp_error* error);
void fcp_executor_free(fcp_executor* executor); /* NULL is fine; contexts stay freeable */

typedef enum fcp_dtype { FCP_DTYPE_BF16 = 0, FCP_DTYPE_FP16 = 1, FCP_DTYPE_FP32 = 2 } fcp_dtype;
typedef struct fcp_attention_shape {
  int32_t num_q_heads, num_kv_heads, head_dim; /* num_q_heads a multiple of num_kv_heads */
  int32_t dtype; /* fcp_dtype of q, k, v, o, dq, dk, dv, d_o (lse is always fp32) */
} fcp_attention_shape;

/* Forward for the executor's rank on `plan` (which must hold that rank's slice), step `step`
 * (every rank must pass the same plan id and step; calls with the same step, e.g. one per layer,
 * are told apart by their order). Buffers are caller-owned, row-major, on the executor's device:
 * host memory for "cpu" (bf16/fp16 are computed in fp32 and rounded once on output); device
 * memory for "cuda", where the call first orders itself after the work already enqueued on
 * `stream` (a cudaStream_t, NULL = the default stream) and its results are complete when it
 * returns (the call is synchronous for the host, on both devices):
 *   q, o: [tokens, num_q_heads, head_dim]   k, v: [tokens, num_kv_heads, head_dim]
 *   lse:  [tokens, num_q_heads] fp32 (natural log of the sum of exp(scaled scores), softmax scale
 *         1/sqrt(head_dim))
 * tokens = fcp_plan_rank_tokens' count for this rank (INVALID_ARGUMENT naming `tokens`
 * otherwise). *context receives what backward needs (the plan's schedule and the K/V rows received
 * from peers); q, k, v, o and lse must stay valid and unchanged until fcp_backward or
 * fcp_context_free. context NULL: no backward will follow (inference), nothing is kept. */
int fcp_forward(fcp_executor* executor, const fcp_plan* plan, int64_t step,
                const fcp_attention_shape* shape, int64_t tokens, const void* q, const void* k,
                const void* v, void* o, float* lse, void* stream, fcp_context** context,
                fcp_error* error);
/* Backward: dq, dk, dv (same shapes/dtype as q, k, v, overwritten) from d_o (like o), on the
 * executor that ran the forward (INVALID_ARGUMENT naming `context` otherwise). Consumes nothing:
 * the context is freed with fcp_context_free; backward may run once per context. */
int fcp_backward(fcp_executor* executor, fcp_context* context, const void* d_o, void* dq, void* dk,
                 void* dv, void* stream, fcp_error* error);
void fcp_context_free(fcp_context* context); /* NULL is fine */

/* Per-call measurements of the last forward/backward (for predicted-vs-measured). */
typedef struct fcp_exec_stats {
  double forward_seconds, backward_seconds, attention_seconds, comm_wait_seconds;
  int64_t bytes_sent, bytes_received, tiles;
} fcp_exec_stats;
void fcp_executor_last_stats(const fcp_executor* executor, fcp_exec_stats* stats);

/* ---- Global <-> local rows over the executor's transport (undispatch and its gradient) ----
 * row_bytes: bytes of one token's row (e.g. heads*head_dim*dtype size). Buffers on the executor's
 * device (for "cuda" the library stages them through host memory; the call is synchronous).
 * Collective: every rank calls with the same plan and step.
 * Local rows are in the executor rank's local order (fcp_plan_rank_tokens); the plan must hold
 * that rank's slice.
 * gather: global[g] = the row of token g from whichever rank holds it (all-gather into global
 *         order), global: [total_tokens * row_bytes].
 * scatter_add: local[i] = sum over ranks r of global_r[g_i] for this rank's tokens g_i (the
 *         gradient of gather: a reduce-scatter), summed in fp32 and rounded once to `dtype`
 *         (an fcp_dtype); row_elements: elements of one row. */
int fcp_gather_rows(fcp_executor* executor, const fcp_plan* plan, int64_t step, int64_t row_bytes,
                    const void* local, void* global, fcp_error* error);
int fcp_scatter_add_rows(fcp_executor* executor, const fcp_plan* plan, int64_t step, int32_t dtype,
                         int64_t row_elements, const void* global, void* local, fcp_error* error);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* FCP_CLIENT_INCLUDE_FCP_C_EXEC_API_H_ */
