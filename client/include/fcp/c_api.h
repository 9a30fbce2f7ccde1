/* fcp C API: the planner client (fcp/client.h) for any language with a C FFI (Python ctypes,
 * Rust, Go cgo, Julia...). Opaque handles, integer status codes, messages in caller-owned error
 * structs. Requests and plans cross the boundary either as simple C structs (causal documents)
 * or as serialized protobuf (fcp.v1.PlanRequest in, fcp.v1.PlanResponse out) for everything else.
 *
 *   fcp_client_options options;
 *   fcp_client_options_init(&options);
 *   options.target = "fcp-coordinator:50051";
 *   fcp_client* client = NULL;
 *   fcp_error error;
 *   if (fcp_client_new(&options, &client, &error) != FCP_OK) die(error.message);
 *
 *   int64_t lengths[] = {4096, 1024, 900};
 *   int32_t rank = 3;
 *   fcp_batch batch;
 *   fcp_batch_init(&batch);
 *   batch.job_id = "llama-8b-run3"; batch.step = 41;
 *   batch.document_lengths = lengths; batch.num_documents = 3;
 *   batch.num_workers = 8; batch.ranks = &rank; batch.num_ranks = 1;
 *   fcp_plan* plan = NULL;
 *   if (fcp_client_plan(client, &batch, &plan, &error) != FCP_OK) die(error.message);
 *   printf("%s %s\n", fcp_plan_id(plan), fcp_plan_strategy(plan));
 *   fcp_plan_free(plan);
 *   fcp_client_free(client);
 *
 * Status codes are absl / gRPC codes (FCP_INVALID_ARGUMENT = 3, ...). Every function taking an
 * `fcp_error*` accepts NULL. Thread-safety: a client may be used from many threads at once; a plan
 * is immutable. Strings returned by plan accessors live as long as the plan.
 */
#ifndef FCP_CLIENT_INCLUDE_FCP_C_API_H_
#define FCP_CLIENT_INCLUDE_FCP_C_API_H_

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum fcp_status {
  FCP_OK = 0,
  FCP_CANCELLED = 1,
  FCP_UNKNOWN = 2,
  FCP_INVALID_ARGUMENT = 3,
  FCP_DEADLINE_EXCEEDED = 4,
  FCP_NOT_FOUND = 5,
  FCP_ALREADY_EXISTS = 6,
  FCP_PERMISSION_DENIED = 7, /* the job token is another job's (coordinator --job-tokens) */
  FCP_RESOURCE_EXHAUSTED = 8,
  FCP_FAILED_PRECONDITION = 9,
  FCP_INTERNAL = 13,
  FCP_UNAVAILABLE = 14,
  FCP_UNAUTHENTICATED = 16 /* no job token, or one the coordinator does not know */
} fcp_status;

typedef struct fcp_error {
  int code;           /* an fcp_status */
  char message[1024]; /* NUL-terminated, truncated if longer */
} fcp_error;

typedef struct fcp_client fcp_client;
typedef struct fcp_plan fcp_plan;

typedef struct fcp_client_options {
  const char* target;           /* "host:port"; NULL or "" = plan locally only */
  double deadline_seconds;      /* per request, all attempts (default 5) */
  int max_attempts;             /* attempts on UNAVAILABLE (default 3) */
  int local_fallback;           /* nonzero: plan locally when the coordinator cannot answer */
  const char* default_strategy; /* the coordinator's --default-strategy (default "auto") */
} fcp_client_options;

/* TLS towards the coordinator, as the fcp CLI's --tls-ca, --tls-cert and --tls-key (a struct of
 * its own so that fcp_client_options keeps its layout for FFI users). */
typedef struct fcp_tls_options {
  const char* ca_file;   /* PEM roots the coordinator's certificate must chain to; NULL = system */
  const char* cert_file; /* mutual TLS: this client's PEM certificate chain (with key_file) */
  const char* key_file;  /* mutual TLS: its PEM private key */
} fcp_tls_options;

/* One batch of causal documents, for one or more ranks. Zero / NULL fields take the defaults of
 * fcp.v1 (plan.proto): e.g. workers_per_node 0 = 8, strategy NULL = the coordinator's default. */
typedef struct fcp_batch {
  const char* job_id;
  int64_t step;
  const int64_t* document_lengths;
  size_t num_documents;
  int32_t num_q_heads;  /* default 32 */
  int32_t num_kv_heads; /* default 8 */
  int32_t head_dim;     /* default 128 */
  int32_t num_workers;  /* required */
  int32_t workers_per_node;
  const char* strategy;
  const int32_t* ranks; /* the slices to return; NULL / 0 = every rank */
  size_t num_ranks;
} fcp_batch;

/* The model around attention and what to plan for, for fcp_client_plan_model,
 * fcp_client_prefetch_model and fcp_client_plan_masked_model (c_exec_api.h): a struct of its own,
 * so that fcp_batch keeps its layout for FFI users of fcp_client_plan. Initialise with
 * fcp_model_init; 0 / NULL fields take the defaults of fcp.v1 (plan.proto): the preset's shape,
 * else Llama-3-8B's. fcp_batch's num_q_heads, num_kv_heads and head_dim, when nonzero, override the
 * preset's. */
typedef enum fcp_mlp_kind {
  FCP_MLP_DEFAULT = 0,
  FCP_MLP_GATED = 1,
  FCP_MLP_PLAIN = 2
} fcp_mlp_kind;
typedef enum fcp_objective {
  FCP_OBJECTIVE_DEFAULT = 0,    /* the coordinator's: whole step */
  FCP_OBJECTIVE_WHOLE_STEP = 1, /* linear layers (by tokens) + attention, under the token budget */
  FCP_OBJECTIVE_ATTENTION = 2   /* attention alone */
} fcp_objective;
typedef struct fcp_model {
  const char* preset;              /* "llama3-8b", "llama3-70b", ...; NULL / "" = llama3-8b */
  int32_t hidden_size;             /* 0 = the preset's */
  int32_t ffn_hidden_size;         /* 0 = the preset's */
  int32_t mlp;                     /* an fcp_mlp_kind */
  int32_t num_layers;              /* 0 = the preset's (activation memory only) */
  double linear_flops_per_token;   /* 0 = derived from the shape */
  int32_t objective;               /* an fcp_objective */
  double token_slack;              /* < 0 = default (0.05: at most 1.05x the mean tokens) */
  int64_t activation_memory_bytes; /* per worker; 0 = none (the token budget is the slack's) */
} fcp_model;

/* One worker block of the plan: tokens [begin, end) of a document, owned by `owner`. */
typedef struct fcp_block {
  int32_t document;
  int64_t begin;
  int64_t end;
  int32_t owner;
} fcp_block;

typedef enum fcp_plan_source {
  FCP_SOURCE_COORDINATOR = 0,
  FCP_SOURCE_LOCAL_FALLBACK = 1,
  FCP_SOURCE_LOCAL = 2
} fcp_plan_source;

typedef struct fcp_client_stats {
  int64_t requests, rpcs, retries, fallbacks, errors, prefetches, prefetch_hits;
} fcp_client_stats;

/* What a rank measured in one step, for fcp_client_report_step (the closed loop: the coordinator
 * refits the job's cost model from these and plans its next steps with it). Seconds of wall time;
 * 0 = not measured. */
typedef struct fcp_step_times {
  int32_t rank;             /* the rank that ran the step, in [0, num_workers) */
  double forward_seconds;   /* context-parallel attention, forward */
  double backward_seconds;  /* context-parallel attention, backward; 0 = forward only */
  double comm_wait_seconds; /* of both, the time blocked on transfers */
  double linear_seconds;    /* the non-attention layers of the step (0 = not measured) */
  double linear_flops;      /* their FLOPs (0 = not measured) */
} fcp_step_times;

void fcp_client_options_init(fcp_client_options* options);
void fcp_batch_init(fcp_batch* batch);
void fcp_step_times_init(fcp_step_times* times);
void fcp_model_init(fcp_model* model); /* every field default; token_slack -1 */

int fcp_client_new(const fcp_client_options* options, fcp_client** client, fcp_error* error);
/* fcp_client_new over TLS (tls NULL = plaintext); the PEM files are read and checked here:
 * INVALID_ARGUMENT naming tls.ca_file, tls.cert_file or tls.key_file. */
int fcp_client_new_tls(const fcp_client_options* options, const fcp_tls_options* tls,
                       fcp_client** client, fcp_error* error);
/* fcp_client_new_tls with a job token, sent as `authorization: Bearer TOKEN` metadata to a
 * coordinator started with --job-tokens (NULL or "" = $FCP_JOB_TOKEN if set, else none). */
int fcp_client_new_auth(const fcp_client_options* options, const fcp_tls_options* tls,
                        const char* job_token, fcp_client** client, fcp_error* error);
void fcp_client_free(fcp_client* client); /* waits for prefetches; NULL is fine */

/* Plans `batch` (coordinator, retries, fallback: see fcp/client.h). */
int fcp_client_plan(fcp_client* client, const fcp_batch* batch, fcp_plan** plan, fcp_error* error);
/* fcp_client_plan for `model` (NULL = the defaults, as fcp_client_plan). */
int fcp_client_plan_model(fcp_client* client, const fcp_batch* batch, const fcp_model* model,
                          fcp_plan** plan, fcp_error* error);
/* Same, with a serialized fcp.v1.PlanRequest. */
int fcp_client_plan_request(fcp_client* client, const void* request, size_t request_size,
                            fcp_plan** plan, fcp_error* error);
/* Starts planning `batch` (its step) in the background; fcp_client_get collects it. */
int fcp_client_prefetch(fcp_client* client, const fcp_batch* batch, fcp_error* error);
int fcp_client_prefetch_model(fcp_client* client, const fcp_batch* batch, const fcp_model* model,
                              fcp_error* error);
int fcp_client_get(fcp_client* client, int64_t step, fcp_plan** plan, fcp_error* error);
void fcp_client_get_stats(const fcp_client* client, fcp_client_stats* stats);
/* Reports `times` of the step `batch` describes (its job_id, step, model and topology), run with
 * `plan` (which must hold the slice of times->rank): the plan supplies the tile shapes, transfers
 * and prediction; one attempt, no retry. INVALID_ARGUMENT naming the field for impossible times,
 * RESOURCE_EXHAUSTED over the coordinator's report rate, FAILED_PRECONDITION without the slice. */
int fcp_client_report_step(fcp_client* client, const fcp_batch* batch, const fcp_plan* plan,
                           const fcp_step_times* times, fcp_error* error);

void fcp_plan_free(fcp_plan* plan); /* NULL is fine */
const char* fcp_plan_id(const fcp_plan* plan);
const char* fcp_plan_strategy(const fcp_plan* plan);
int fcp_plan_cache_hit(const fcp_plan* plan);
int fcp_plan_source_of(const fcp_plan* plan);            /* an fcp_plan_source */
double fcp_plan_predicted_step_ms(const fcp_plan* plan); /* forward + backward */
size_t fcp_plan_num_blocks(const fcp_plan* plan);
int fcp_plan_block(const fcp_plan* plan, size_t index, fcp_block* block); /* FCP_OK or NOT_FOUND */
size_t fcp_plan_num_workers(const fcp_plan* plan); /* slices held (the requested ranks) */
int32_t fcp_plan_worker_rank(const fcp_plan* plan, size_t worker);
/* Block ids of a slice in local order (the data loader's token permutation); NULL if no such
 * slice. `count` receives their number. */
const int32_t* fcp_plan_worker_blocks(const fcp_plan* plan, size_t worker, size_t* count);
/* The whole response, serialized fcp.v1.PlanResponse. */
const void* fcp_plan_serialized(const fcp_plan* plan, size_t* size);
/* The plan as protobuf JSON (as `fcp plan --dump-plan` writes it). */
const char* fcp_plan_json(const fcp_plan* plan);

#ifdef __cplusplus
} /* extern "C" */
#endif

/* Execution (executor, forward/backward, token dispatch, masks): fcp/c_exec_api.h. */
#include "fcp/c_exec_api.h"

#endif /* FCP_CLIENT_INCLUDE_FCP_C_API_H_ */
