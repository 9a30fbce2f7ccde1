/* The C API used from C (this file is compiled as C99): the header's example, against `target`. */
#include <stdio.h>
#include <string.h>

#include "fcp/c_api.h"

/* Plans a small batch for rank 3 of 8 and checks what a data loader needs. Returns 0 on success,
 * else writes what failed into `message`. */
int fcp_c_api_smoke(const char* target, char* message, size_t message_size) {
  fcp_client_options options;
  fcp_client_options_init(&options);
  options.target = target;
  fcp_client* client = NULL;
  fcp_error error;
  if (fcp_client_new(&options, &client, &error) != FCP_OK) {
    snprintf(message, message_size, "fcp_client_new: %s", error.message);
    return 1;
  }
  int64_t lengths[64];
  for (int i = 0; i < 64; ++i) lengths[i] = 100 + 37 * i;
  int32_t rank = 3;
  fcp_batch batch;
  fcp_batch_init(&batch);
  batch.job_id = "c-smoke";
  batch.step = 1;
  batch.document_lengths = lengths;
  batch.num_documents = 64;
  batch.num_workers = 8;
  batch.ranks = &rank;
  batch.num_ranks = 1;
  batch.strategy = "fcp";
  fcp_plan* plan = NULL;
  int result = 0;
  if (fcp_client_plan(client, &batch, &plan, &error) != FCP_OK) {
    snprintf(message, message_size, "fcp_client_plan: %s", error.message);
    result = 1;
  } else if (fcp_plan_num_workers(plan) != 1 || fcp_plan_worker_rank(plan, 0) != 3) {
    snprintf(message, message_size, "expected rank 3's slice only");
    result = 1;
  } else if (strcmp(fcp_plan_strategy(plan), "fcp") != 0 || strlen(fcp_plan_id(plan)) != 32) {
    snprintf(message, message_size, "strategy %s, id %s", fcp_plan_strategy(plan),
             fcp_plan_id(plan));
    result = 1;
  } else {
    size_t count = 0;
    const int32_t* blocks = fcp_plan_worker_blocks(plan, 0, &count);
    for (size_t i = 0; i < count && result == 0; ++i) {
      fcp_block block;
      if (fcp_plan_block(plan, (size_t)blocks[i], &block) != FCP_OK || block.owner != 3) {
        snprintf(message, message_size, "block %d is not rank 3's", (int)blocks[i]);
        result = 1;
      }
    }
    if (result == 0 && count == 0) {
      snprintf(message, message_size, "rank 3 holds no blocks");
      result = 1;
    }
  }
  fcp_plan_free(plan);
  fcp_client_free(client);
  return result;
}
