/* libFuzzer target: config.json parsing (weights/config.c) on arbitrary bytes.
 *
 * Checks: a status and a message on rejection; on acceptance the config passes
 * ember_config_check again and every field is inside the bounds ember promises (so a
 * later allocation sized from it cannot overflow). */
#include <stdint.h>
#include <string.h>

#include "tests/fuzz/fuzz_util.h"
#include "weights/config.h"

static void fuzz_bert_config(const char *json) {
    ember_config cfg;
    ember_status st = ember_config_parse(json, "fuzz/config.json", &cfg);
    fuzz_check_status(st, "ember_config_parse");
    if (st != EMBER_OK) return;
    fuzz_check_status(ember_config_check(&cfg, "reparsed"), "ember_config_check");
    FUZZ_CHECK(ember_config_check(&cfg, "reparsed") == EMBER_OK, "accepted config fails its check: %s",
               ember_last_error());
    FUZZ_CHECK(cfg.hidden_size % cfg.num_attention_heads == 0, "heads do not divide hidden");
    FUZZ_CHECK(cfg.layer_norm_eps > 0.0 && cfg.layer_norm_eps < 1.0, "eps %g", cfg.layer_norm_eps);
    FUZZ_CHECK(cfg.has_pooler == 0, "parse must leave has_pooler 0");
    FUZZ_CHECK(ember_config_param_count(&cfg) > 0, "parameter count overflows");
    FUZZ_CHECK(strcmp(ember_activation_name(cfg.hidden_act), "unknown") != 0, "bad activation");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *json = malloc(size + 1); /* the parsers take a NUL-terminated string */
    FUZZ_CHECK(json, "out of memory");
    memcpy(json, data, size);
    json[size] = '\0';
    fuzz_bert_config(json);
    free(json);
    return 0;
}
