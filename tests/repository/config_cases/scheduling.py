"""Scheduling cases: batch_input/batch_output, sequence and dynamic batching, transaction policy,
response cache and version policy, each with the verdict Triton 2.51 gives it (auto-complete on).

Every model is a python model with two inputs and two outputs; ``body`` adds the fields under test.
"""

from __future__ import annotations

from tests.repository.config_cases import PY_MODEL, Case, Edit, with_fixes

IO = (
    'input [{ name: "INPUT0" data_type: TYPE_FP32 dims: [4] }, { name: "INPUT1" data_type: TYPE_FP32 dims: [-1] }]\n'
    'output [{ name: "OUTPUT0" data_type: TYPE_FP32 dims: [4] }, { name: "OUTPUT1" data_type: TYPE_FP32 dims: [-1] }]\n'
)


def py(body: str = "", mbs: int = 8) -> str:
    """A python model's config.pbtxt with ``body`` appended."""
    return f'backend: "python"\nmax_batch_size: {mbs}\n{IO}{body}\n'


def no(name: str, family: str, body: str, message: str, mbs: int = 8,
       files: dict[str, str | bytes] | None = None) -> Case:
    return Case(name, family, py(body, mbs), "refused", message, files=files or {})


def ok(name: str, family: str, body: str, message: str = "", mbs: int = 8,
       files: dict[str, str | bytes] | None = None) -> Case:
    return Case(name, family, py(body, mbs), "accepted", message, files=files or {})


def bi(kind: str, sources: str = '["INPUT0"]', dtype: str = "TYPE_FP32", target: str = "B0") -> str:
    return (f'batch_input [{{ kind: {kind} target_name: "{target}" data_type: {dtype} '
            f"source_input: {sources} }}]")


def bo(sources: str = '["INPUT1"]', targets: str = '["OUTPUT1"]') -> str:
    return f"batch_output [{{ kind: BATCH_SCATTER_WITH_INPUT_SHAPE target_name: {targets} source_input: {sources} }}]"


def seq(controls: str = "", extra: str = "") -> str:
    return f"sequence_batching {{ {extra} control_input [{controls}] }}" if controls else \
        f"sequence_batching {{ {extra} }}"


def ctl(name: str, kind: str, values: str = "int32_false_true: [0, 1]") -> str:
    return f'{{ name: "{name}" control [{{ kind: {kind} {values} }}] }}'


def state(initial: str = "", dims: str = "[4]", dtype: str = "TYPE_FP32", input_name: str = "STATE_IN",
          output_name: str = "STATE_OUT", extra: str = "") -> str:
    init = f"initial_state [{initial}]" if initial else ""
    return (f'state [{{ input_name: "{input_name}" output_name: "{output_name}" data_type: {dtype} '
            f"dims: {dims} {init} {extra} }}]")


ZERO = '{ name: "init" data_type: TYPE_FP32 dims: [4] zero_data: true }'
MODEL = {"1/model.py": PY_MODEL}

BATCH_IO = [
    no("s_bi_element_count_no_source", "batch_io", bi("BATCH_ELEMENT_COUNT", "[]"), "expects 1 source input, got 0"),
    no("s_bi_element_count_two_sources", "batch_io", bi("BATCH_ELEMENT_COUNT", '["INPUT0", "INPUT1"]'),
       "expects 1 source input, got 2"),
    no("s_bi_accumulated_two_sources", "batch_io", bi("BATCH_ACCUMULATED_ELEMENT_COUNT", '["INPUT0", "INPUT1"]'),
       "expects 1 source input, got 2"),
    no("s_bi_with_zero_no_source", "batch_io", bi("BATCH_ACCUMULATED_ELEMENT_COUNT_WITH_ZERO", "[]"),
       "expects 1 source input, got 0"),
    no("s_bi_max_shape_no_source", "batch_io", bi("BATCH_MAX_ELEMENT_COUNT_AS_SHAPE", "[]"),
       "expects 1 source input, got 0"),
    no("s_bi_item_shape_two_sources", "batch_io", bi("BATCH_ITEM_SHAPE", '["INPUT1", "INPUT1"]'),
       "expects 1 source input, got 2"),
    no("s_bi_flatten_no_source", "batch_io", bi("BATCH_ITEM_SHAPE_FLATTEN", "[]"), "expects 1 source input, got 0"),
    no("s_bi_dtype_int64", "batch_io", bi("BATCH_ELEMENT_COUNT", dtype="TYPE_INT64"),
       "data_type TYPE_INT64 is not allowed"),
    no("s_bi_dtype_fp16", "batch_io", bi("BATCH_ITEM_SHAPE", dtype="TYPE_FP16"), "data_type TYPE_FP16 is not allowed"),
    no("s_bi_dtype_unset", "batch_io",
       'batch_input [{ kind: BATCH_ELEMENT_COUNT target_name: "B0" source_input: ["INPUT0"] }]',
       "data_type TYPE_INVALID is not allowed"),
    no("s_bi_unknown_source", "batch_io", bi("BATCH_ELEMENT_COUNT", '["NOPE"]'), "source input 'NOPE' is not"),
    no("s_bi_source_is_output", "batch_io", bi("BATCH_MAX_ELEMENT_COUNT_AS_SHAPE", '["OUTPUT0"]'),
       "source input 'OUTPUT0' is not"),
    no("s_bi_unknown_source_mbs0", "batch_io", bi("BATCH_ACCUMULATED_ELEMENT_COUNT", '["input0"]'),
       "source input 'input0' is not", mbs=0),
    no("s_bi_unknown_kind", "batch_io", bi("9"), "batch_input kind <9> is unknown to Triton"),
    no("s_bo_unknown_kind", "batch_io",
       'batch_output [{ kind: 3 target_name: ["OUTPUT1"] source_input: ["INPUT1"] }]',
       "batch_output kind <3> is unknown to Triton"),
    no("s_bo_no_source", "batch_io", bo("[]"), "expects 1 source input, got 0"),
    no("s_bo_two_sources", "batch_io", bo('["INPUT0", "INPUT1"]'), "expects 1 source input, got 2"),
    no("s_bo_unknown_source", "batch_io", bo('["NOPE"]'), "source input 'NOPE' is not"),
    no("s_bo_unknown_target", "batch_io", bo(targets='["NOPE"]'), "target 'NOPE' is not an output"),
    no("s_bo_target_is_input", "batch_io", bo(targets='["INPUT0"]'), "target 'INPUT0' is not an output"),
    no("s_bo_duplicate_target", "batch_io", bo(targets='["OUTPUT1", "OUTPUT1"]'), "target 'OUTPUT1' is listed twice"),
    ok("s_bi_ok_element_count", "batch_io", bi("BATCH_ELEMENT_COUNT")),
    ok("s_bi_ok_int32_all_kinds", "batch_io",
       "batch_input [" + ", ".join(
           f'{{ kind: {k} target_name: "B{i}" data_type: TYPE_INT32 source_input: ["INPUT1"] }}'
           for i, k in enumerate(("BATCH_ELEMENT_COUNT", "BATCH_ACCUMULATED_ELEMENT_COUNT",
                                  "BATCH_ACCUMULATED_ELEMENT_COUNT_WITH_ZERO", "BATCH_MAX_ELEMENT_COUNT_AS_SHAPE",
                                  "BATCH_ITEM_SHAPE", "BATCH_ITEM_SHAPE_FLATTEN"))) + "]"),
    ok("s_bi_ok_mbs0", "batch_io", bi("BATCH_ITEM_SHAPE"), mbs=0),
    ok("s_bo_ok_scatter", "batch_io", bo()),
    Case("s_bo_no_target", "batch_io", py(bo(targets="[]")), "refused", "batch_output lists no target_name",
         triton=False, why="tritonserver 2.51 crashes (SIGSEGV) loading it, taking every other model down"),
]

SEQUENCE = [
    no("s_seq_control_no_name", "sequence",
       seq('{ control [{ kind: CONTROL_SEQUENCE_START int32_false_true: [0, 1] }] }'),
       "control_input 0 has no name"),
    no("s_seq_tensor_in_two_entries", "sequence",
       seq(ctl("CTRL", "CONTROL_SEQUENCE_START") + ", " + ctl("CTRL", "CONTROL_SEQUENCE_END")),
       "control tensor 'CTRL' is listed in more than one control_input"),
    no("s_seq_two_start", "sequence",
       seq(ctl("START_A", "CONTROL_SEQUENCE_START") + ", " + ctl("START_B", "CONTROL_SEQUENCE_START")),
       "more than one CONTROL_SEQUENCE_START tensor"),
    no("s_seq_two_end", "sequence",
       seq(ctl("END_A", "CONTROL_SEQUENCE_END") + ", " + ctl("END_B", "CONTROL_SEQUENCE_END")),
       "more than one CONTROL_SEQUENCE_END tensor"),
    no("s_seq_two_ready", "sequence",
       seq(ctl("READY_A", "CONTROL_SEQUENCE_READY") + ", " + ctl("READY_B", "CONTROL_SEQUENCE_READY")),
       "more than one CONTROL_SEQUENCE_READY tensor"),
    no("s_seq_two_corrid", "sequence",
       seq(ctl("CID_A", "CONTROL_SEQUENCE_CORRID", "data_type: TYPE_UINT64") + ", "
           + ctl("CID_B", "CONTROL_SEQUENCE_CORRID", "data_type: TYPE_UINT64")),
       "more than one CONTROL_SEQUENCE_CORRID tensor"),
    no("s_seq_same_kind_twice_in_entry", "sequence",
       seq('{ name: "START" control [{ kind: CONTROL_SEQUENCE_START int32_false_true: [0, 1] }, '
           '{ kind: CONTROL_SEQUENCE_START fp32_false_true: [0, 1] }] }'),
       "more than one CONTROL_SEQUENCE_START tensor"),
    no("s_seq_start_no_values", "sequence", seq(ctl("START", "CONTROL_SEQUENCE_START", "")),
       "CONTROL_SEQUENCE_START control of 'START' sets none of"),
    no("s_seq_end_no_values_dtype_only", "sequence", seq(ctl("END", "CONTROL_SEQUENCE_END", "data_type: TYPE_INT32")),
       "CONTROL_SEQUENCE_END control of 'END' sets none of"),
    no("s_seq_kind_defaults_to_start", "sequence", seq('{ name: "CID" control [{ data_type: TYPE_UINT64 }] }'),
       "CONTROL_SEQUENCE_START control of 'CID' sets none of"),
    no("s_seq_ready_two_value_kinds", "sequence",
       seq(ctl("READY", "CONTROL_SEQUENCE_READY", "int32_false_true: [0, 1] fp32_false_true: [0, 1]")),
       "CONTROL_SEQUENCE_READY control of 'READY' sets more than one of"),
    no("s_seq_start_int32_and_bool", "sequence",
       seq(ctl("START", "CONTROL_SEQUENCE_START", "int32_false_true: [0, 1] bool_false_true: [false, true]")),
       "sets more than one of"),
    no("s_seq_int32_three_values", "sequence",
       seq(ctl("START", "CONTROL_SEQUENCE_START", "int32_false_true: [0, 1, 2]")),
       "int32_false_true has 3 values"),
    no("s_seq_fp32_one_value", "sequence", seq(ctl("END", "CONTROL_SEQUENCE_END", "fp32_false_true: [1]")),
       "fp32_false_true has 1 value"),
    no("s_seq_bool_one_value", "sequence", seq(ctl("READY", "CONTROL_SEQUENCE_READY", "bool_false_true: [true]")),
       "bool_false_true has 1 value"),
    no("s_seq_corrid_with_values", "sequence",
       seq(ctl("CID", "CONTROL_SEQUENCE_CORRID", "data_type: TYPE_UINT64 int32_false_true: [0, 1]")),
       "CONTROL_SEQUENCE_CORRID control of 'CID' must not set"),
    no("s_seq_corrid_fp32", "sequence", seq(ctl("CID", "CONTROL_SEQUENCE_CORRID", "data_type: TYPE_FP32")),
       "CONTROL_SEQUENCE_CORRID tensor 'CID' has data_type TYPE_FP32"),
    no("s_seq_corrid_no_dtype", "sequence", seq(ctl("CID", "CONTROL_SEQUENCE_CORRID", "")),
       "CONTROL_SEQUENCE_CORRID tensor 'CID' has data_type TYPE_INVALID"),
    no("s_seq_corrid_bool", "sequence", seq(ctl("CID", "CONTROL_SEQUENCE_CORRID", "data_type: TYPE_BOOL")),
       "has data_type TYPE_BOOL"),
    no("s_seq_oldest_preferred_zero", "sequence", seq(extra="oldest { preferred_batch_size: [0] }"),
       "sequence_batching.oldest preferred_batch_size 0 is outside [1, max_batch_size=8]"),
    no("s_seq_oldest_preferred_above_max", "sequence", seq(extra="oldest { preferred_batch_size: [4, 16] }"),
       "preferred_batch_size 16 is outside [1, max_batch_size=8]"),
    no("s_seq_oldest_preferred_mbs0", "sequence", seq(extra="oldest { preferred_batch_size: [1] }"),
       "preferred_batch_size 1 is outside [1, max_batch_size=0]", mbs=0),
    no("s_seq_direct_utilization_negative", "sequence", seq(extra="direct { minimum_slot_utilization: -0.5 }"),
       "minimum_slot_utilization -0.5 is outside [0, 1]"),
    no("s_seq_direct_utilization_above_one", "sequence", seq(extra="direct { minimum_slot_utilization: 1.5 }"),
       "minimum_slot_utilization 1.5 is outside [0, 1]"),
    no("s_seq_batch_strategy_library", "sequence",
       seq() + '\nparameters { key: "TRITON_BATCH_STRATEGY_PATH" value { string_value: "/tmp/x.so" } }',
       "TRITON_BATCH_STRATEGY_PATH cannot be used with sequence_batching"),
    no("s_seq_state_two_initial", "sequence", seq(extra=state(ZERO + ", " + ZERO)),
       "state 'STATE_IN' has 2 initial_state entries"),
    no("s_seq_state_initial_dtype", "sequence",
       seq(extra=state('{ name: "init" data_type: TYPE_INT32 dims: [4] zero_data: true }')),
       "initial_state data_type TYPE_INT32 differs from the state's TYPE_FP32"),
    no("s_seq_state_initial_no_name", "sequence",
       seq(extra=state('{ data_type: TYPE_FP32 dims: [4] zero_data: true }')),
       "initial_state of state 'STATE_IN' has no name"),
    no("s_seq_state_input_twice", "sequence",
       seq(extra=state(ZERO) + " " + state(ZERO, output_name="STATE_OUT2")),
       "state input 'STATE_IN' has an initial_state more than once"),
    no("s_seq_state_initial_rank", "sequence",
       seq(extra=state('{ name: "init" data_type: TYPE_FP32 dims: [2, 2] zero_data: true }')),
       "initial_state dims [2, 2] have rank 2 but state 'STATE_IN' dims [4] have rank 1"),
    no("s_seq_state_initial_variable", "sequence",
       seq(extra=state('{ name: "init" data_type: TYPE_FP32 dims: [-1] zero_data: true }', dims="[-1]")),
       "initial_state dims [-1] of state 'STATE_IN' have a variable (-1) size"),
    no("s_seq_state_initial_dim_mismatch", "sequence",
       seq(extra=state('{ name: "init" data_type: TYPE_FP32 dims: [3] zero_data: true }')),
       "initial_state dims [3] differ from state 'STATE_IN' dims [4]"),
    Case("s_seq_state_initial_no_data", "sequence",
         py(seq(extra=state('{ name: "init" data_type: TYPE_FP32 dims: [4] }'))), "refused",
         "initial_state of state 'STATE_IN' sets neither zero_data nor data_file",
         triton=False, why="tritonserver 2.51 refuses it, but crashed (SIGSEGV) once in five loads here, which "
         "would take every other model of a shared server down"),
    no("s_seq_state_initial_file_missing", "sequence",
       seq(extra=state('{ name: "init" data_type: TYPE_FP32 dims: [4] data_file: "init.bin" }')),
       "initial_state data file 'initial_state/init.bin' is missing"),
    no("s_seq_state_initial_file_short", "sequence",
       seq(extra=state('{ name: "init" data_type: TYPE_FP32 dims: [4] data_file: "init.bin" }')),
       "holds 4 bytes but state 'STATE_IN' needs 16", files={**MODEL, "initial_state/init.bin": b"\0" * 4}),
    ok("s_seq_ok_all_controls", "sequence",
       seq(ctl("START", "CONTROL_SEQUENCE_START") + ", " + ctl("END", "CONTROL_SEQUENCE_END", "fp32_false_true: [0, 1]")
           + ", " + ctl("READY", "CONTROL_SEQUENCE_READY", "bool_false_true: [false, true]") + ", "
           + ctl("CID", "CONTROL_SEQUENCE_CORRID", "data_type: TYPE_UINT64"),
           "max_sequence_idle_microseconds: 5000000 direct { max_queue_delay_microseconds: 100 "
           "minimum_slot_utilization: 0.5 }")),
    ok("s_seq_ok_mbs0", "sequence", seq(ctl("START", "CONTROL_SEQUENCE_START")), mbs=0),
    ok("s_seq_ok_one_tensor_two_kinds", "sequence",
       seq('{ name: "FLAGS" control [{ kind: CONTROL_SEQUENCE_START int32_false_true: [0, 1] }, '
           '{ kind: CONTROL_SEQUENCE_END int32_false_true: [0, 1] }] }')),
    ok("s_seq_ok_utilization_zero", "sequence", seq(extra="direct { minimum_slot_utilization: 0.0 }")),
    ok("s_seq_ok_oldest", "sequence",
       seq(extra="oldest { max_candidate_sequences: 4 preferred_batch_size: [2, 8] "
                 "max_queue_delay_microseconds: 10 }")),
    ok("s_seq_ok_unknown_control_kind", "sequence", seq(ctl("C", "7"))),
    ok("s_seq_ok_oldest_mbs0", "sequence", seq(extra="oldest { max_candidate_sequences: 2 }"), mbs=0),
    ok("s_seq_ok_start_with_dtype", "sequence",
       seq(ctl("START", "CONTROL_SEQUENCE_START", "data_type: TYPE_INT32 int32_false_true: [0, 1]"))),
    ok("s_seq_ok_corrid_string", "sequence", seq(ctl("CID", "CONTROL_SEQUENCE_CORRID", "data_type: TYPE_STRING"))),
    ok("s_seq_ok_state_zero_data", "sequence", seq(extra=state(ZERO))),
    ok("s_seq_ok_state_file", "sequence",
       seq(extra=state('{ name: "init" data_type: TYPE_FP32 dims: [4] data_file: "init.bin" }')),
       files={**MODEL, "initial_state/init.bin": b"\0" * 16}),
    ok("s_seq_ok_state_variable_dims", "sequence",
       seq(extra=state('{ name: "init" data_type: TYPE_FP32 dims: [3] zero_data: true }', dims="[-1]"))),
    ok("s_seq_ok_growable_on_cpu", "sequence",
       seq(extra=state(extra="use_same_buffer_for_input_output: true use_growable_memory: true")),
       "use_growable_memory works only on KIND_GPU instances"),
]

DYNAMIC = [
    no("s_db_max_batch_negative", "dynamic_batching", "", "max_batch_size is -1", mbs=-1),
    no("s_db_preferred_zero", "dynamic_batching", "dynamic_batching { preferred_batch_size: [0] }",
       "preferred_batch_size 0 is outside [1, max_batch_size=8]"),
    no("s_db_preferred_negative", "dynamic_batching", "dynamic_batching { preferred_batch_size: [2, -4] }",
       "preferred_batch_size -4 is outside [1, max_batch_size=8]"),
    no("s_db_preferred_above_max", "dynamic_batching", "dynamic_batching { preferred_batch_size: [4, 9] }",
       "preferred_batch_size 9 is outside [1, max_batch_size=8]"),
    no("s_db_preferred_mbs0", "dynamic_batching", "dynamic_batching { preferred_batch_size: [1] }",
       "preferred_batch_size 1 is outside [1, max_batch_size=0]", mbs=0),
    no("s_db_default_level_zero", "dynamic_batching", "dynamic_batching { priority_levels: 3 }",
       "default_priority_level 0 is outside [1, priority_levels=3]"),
    no("s_db_default_level_above", "dynamic_batching",
       "dynamic_batching { priority_levels: 2 default_priority_level: 3 }",
       "default_priority_level 3 is outside [1, priority_levels=2]"),
    no("s_db_policy_level_zero", "dynamic_batching",
       "dynamic_batching { priority_levels: 2 default_priority_level: 1 "
       "priority_queue_policy { key: 0 value { max_queue_size: 4 } } }",
       "priority_queue_policy level 0 is outside [1, priority_levels=2]"),
    no("s_db_policy_level_above", "dynamic_batching",
       "dynamic_batching { priority_levels: 2 default_priority_level: 1 "
       "priority_queue_policy { key: 3 value { max_queue_size: 4 } } }",
       "priority_queue_policy level 3 is outside [1, priority_levels=2]"),
    no("s_db_preserve_two_levels", "dynamic_batching",
       "dynamic_batching { preserve_ordering: true priority_levels: 2 default_priority_level: 1 }",
       "preserve_ordering allows one priority level, not 2"),
    no("s_db_preserve_default_delay", "dynamic_batching",
       "dynamic_batching { preserve_ordering: true default_queue_policy { timeout_action: DELAY "
       "default_timeout_microseconds: 1000 } }",
       "default_queue_policy has timeout_action DELAY with a timeout, which preserve_ordering forbids"),
    no("s_db_preserve_priority_delay", "dynamic_batching",
       "dynamic_batching { preserve_ordering: true priority_levels: 1 default_priority_level: 1 "
       "priority_queue_policy { key: 1 value { timeout_action: DELAY default_timeout_microseconds: 50 } } }",
       "priority_queue_policy[1] has timeout_action DELAY with a timeout, which preserve_ordering forbids"),
    no("s_db_preserve_delay_unused_level", "dynamic_batching",
       "dynamic_batching { preserve_ordering: true "
       "priority_queue_policy { key: 7 value { timeout_action: DELAY default_timeout_microseconds: 50 } } }",
       "priority_queue_policy[7] has timeout_action DELAY with a timeout"),
    no("s_db_strategy_library_missing", "dynamic_batching",
       'dynamic_batching { }\nparameters { key: "TRITON_BATCH_STRATEGY_PATH" '
       'value { string_value: "/nonexistent/batchstrategy.so" } }',
       "TRITON_BATCH_STRATEGY_PATH '/nonexistent/batchstrategy.so' does not exist"),
    ok("s_db_ok_mbs0_empty", "dynamic_batching", "dynamic_batching { }", "dynamic_batching has no effect", mbs=0),
    ok("s_db_ok_preferred_equal_max", "dynamic_batching",
       "dynamic_batching { preferred_batch_size: [2, 8] max_queue_delay_microseconds: 100 }"),
    ok("s_db_ok_preferred_unsorted_repeated", "dynamic_batching",
       "dynamic_batching { preferred_batch_size: [4, 2, 4] }"),
    ok("s_db_ok_priorities", "dynamic_batching",
       "dynamic_batching { priority_levels: 3 default_priority_level: 2 "
       "priority_queue_policy { key: 3 value { max_queue_size: 4 timeout_action: DELAY "
       "default_timeout_microseconds: 100 } } default_queue_policy { max_queue_size: 16 } }"),
    ok("s_db_ok_levels_unset_policy_ignored", "dynamic_batching",
       "dynamic_batching { default_priority_level: 5 priority_queue_policy { key: 9 value { max_queue_size: 4 } } }"),
    ok("s_db_ok_preserve_delay_no_timeout", "dynamic_batching",
       "dynamic_batching { preserve_ordering: true default_queue_policy { timeout_action: DELAY } }"),
    ok("s_db_ok_preserve_one_level", "dynamic_batching",
       "dynamic_batching { preserve_ordering: true priority_levels: 1 default_priority_level: 1 "
       "default_queue_policy { timeout_action: REJECT default_timeout_microseconds: 1000 } }"),
]

TRANSACTION = [
    no("s_tx_decoupled_cache", "transaction",
       "model_transaction_policy { decoupled: true }\nresponse_cache { enable: true }",
       "response_cache cannot be enabled on a decoupled model"),
    ok("s_tx_ok_decoupled_dynamic", "transaction",
       "model_transaction_policy { decoupled: true }\ndynamic_batching { }"),
    ok("s_tx_ok_decoupled_sequence", "transaction",
       "model_transaction_policy { decoupled: true }\n" + seq(ctl("START", "CONTROL_SEQUENCE_START"))),
    ok("s_tx_ok_decoupled_cache_off", "transaction",
       "model_transaction_policy { decoupled: true }\nresponse_cache { enable: false }"),
]

CACHE = [
    no("s_rc_sequence", "response_cache", "sequence_batching { }\nresponse_cache { enable: true }",
       "response_cache cannot be enabled with sequence_batching"),
    no("s_rc_sequence_oldest_mbs0", "response_cache",
       "sequence_batching { oldest { } }\nresponse_cache { enable: true }",
       "response_cache cannot be enabled with sequence_batching", mbs=0),
    ok("s_rc_ok_dynamic", "response_cache", "dynamic_batching { }\nresponse_cache { enable: true }"),
    ok("s_rc_ok_sequence_cache_off", "response_cache", "sequence_batching { }\nresponse_cache { enable: false }"),
]

VERSION = [
    no("s_vp_specific_empty", "version_policy", "version_policy { specific { } }",
       "version_policy specific lists no versions"),
    no("s_vp_latest_zero", "version_policy", "version_policy { latest { num_versions: 0 } }",
       "version_policy latest num_versions is 0"),
    no("s_vp_latest_unset", "version_policy", "version_policy { latest { } }",
       "version_policy latest num_versions is 0"),
    no("s_vp_specific_missing", "version_policy", "version_policy { specific { versions: [3] } }",
       "specific version 3 has no folder"),
    no("s_vp_specific_zero", "version_policy", "version_policy { specific { versions: [0] } }",
       "specific version 0 has no folder"),
    ok("s_vp_ok_latest_more_than_present", "version_policy", "version_policy { latest { num_versions: 3 } }"),
    ok("s_vp_ok_specific_present", "version_policy", "version_policy { specific { versions: [1] } }"),
    ok("s_vp_ok_folder_zero", "version_policy", "", files={"0/model.py": PY_MODEL}),
    ok("s_vp_ok_specific_zero", "version_policy", "version_policy { specific { versions: [0] } }",
       files={"0/model.py": PY_MODEL}),
    ok("s_vp_ok_all", "version_policy", "version_policy { all { } }"),
    ok("s_vp_ok_specific_partly_missing", "version_policy", "version_policy { specific { versions: [1, 2] } }",
       "specific version 2 has no folder"),
]

CASES: list[Case] = BATCH_IO + SEQUENCE + DYNAMIC + TRANSACTION + CACHE + VERSION

# Each refused case's config after doing what the validator's fix says (``Case.fixed``).
SOURCE_NONE, SOURCE_TWO = "source_input: []", 'source_input: ["INPUT0", "INPUT1"]'
FIXES: dict[str, Edit | list[Edit]] = {
    # list exactly one of the model's inputs / use one of the model's inputs
    "s_bi_element_count_no_source": (SOURCE_NONE, 'source_input: ["INPUT0"]'),
    "s_bi_element_count_two_sources": (SOURCE_TWO, 'source_input: ["INPUT0"]'),
    "s_bi_accumulated_two_sources": (SOURCE_TWO, 'source_input: ["INPUT1"]'),
    "s_bi_with_zero_no_source": (SOURCE_NONE, 'source_input: ["INPUT1"]'),
    "s_bi_max_shape_no_source": (SOURCE_NONE, 'source_input: ["INPUT1"]'),
    "s_bi_item_shape_two_sources": ('["INPUT1", "INPUT1"]', '["INPUT1"]'),
    "s_bi_flatten_no_source": (SOURCE_NONE, 'source_input: ["INPUT0"]'),
    "s_bi_unknown_source": ('["NOPE"]', '["INPUT0"]'),
    "s_bi_source_is_output": ('["OUTPUT0"]', '["INPUT0"]'),
    "s_bi_unknown_source_mbs0": ('["input0"]', '["INPUT0"]'),
    "s_bo_no_source": (SOURCE_NONE, 'source_input: ["INPUT1"]'),
    "s_bo_two_sources": (SOURCE_TWO, 'source_input: ["INPUT1"]'),
    "s_bo_unknown_source": ('["NOPE"]', '["INPUT1"]'),
    # set data_type: TYPE_INT32 or TYPE_FP32
    "s_bi_dtype_int64": ("TYPE_INT64", "TYPE_INT32"),
    "s_bi_dtype_fp16": ("TYPE_FP16", "TYPE_FP32"),
    "s_bi_dtype_unset": ('target_name: "B0"', 'target_name: "B0" data_type: TYPE_INT32'),
    # use one of the kinds; use one of the model's outputs; list each target once; name the outputs it fills
    "s_bi_unknown_kind": ("kind: 9", "kind: BATCH_ELEMENT_COUNT"),
    "s_bo_unknown_kind": ("kind: 3", "kind: BATCH_SCATTER_WITH_INPUT_SHAPE"),
    "s_bo_unknown_target": ('["NOPE"]', '["OUTPUT1"]'),
    "s_bo_target_is_input": ('["INPUT0"]', '["OUTPUT1"]'),
    "s_bo_duplicate_target": ('["OUTPUT1", "OUTPUT1"]', '["OUTPUT1"]'),
    "s_bo_no_target": ("target_name: []", 'target_name: ["OUTPUT1"]'),
    # sequence controls
    "s_seq_control_no_name": ("control_input [{ control", 'control_input [{ name: "START" control'),
    "s_seq_tensor_in_two_entries": (' }] }, { name: "CTRL" control [{ kind: CONTROL_SEQUENCE_END', ' }, {'
                                    ' kind: CONTROL_SEQUENCE_END'),
    "s_seq_two_start": (', { name: "START_B" control [{ kind: CONTROL_SEQUENCE_START int32_false_true: [0, 1] }] }',
                        ""),
    "s_seq_two_end": (', { name: "END_B" control [{ kind: CONTROL_SEQUENCE_END int32_false_true: [0, 1] }] }', ""),
    "s_seq_two_ready": (', { name: "READY_B" control [{ kind: CONTROL_SEQUENCE_READY int32_false_true: [0, 1] }] }',
                        ""),
    "s_seq_two_corrid": (', { name: "CID_B" control [{ kind: CONTROL_SEQUENCE_CORRID data_type: TYPE_UINT64 }] }',
                         ""),
    "s_seq_same_kind_twice_in_entry": (", { kind: CONTROL_SEQUENCE_START fp32_false_true: [0, 1] }", ""),
    "s_seq_start_no_values": ("kind: CONTROL_SEQUENCE_START ", "kind: CONTROL_SEQUENCE_START int32_false_true: [0, 1]"),
    "s_seq_end_no_values_dtype_only": ("data_type: TYPE_INT32", "data_type: TYPE_INT32 int32_false_true: [0, 1]"),
    "s_seq_kind_defaults_to_start": ("data_type: TYPE_UINT64", "data_type: TYPE_UINT64 int32_false_true: [0, 1]"),
    "s_seq_ready_two_value_kinds": (" fp32_false_true: [0, 1]", ""),
    "s_seq_start_int32_and_bool": (" bool_false_true: [false, true]", ""),
    "s_seq_int32_three_values": ("[0, 1, 2]", "[0, 1]"),
    "s_seq_fp32_one_value": ("fp32_false_true: [1]", "fp32_false_true: [0, 1]"),
    "s_seq_bool_one_value": ("bool_false_true: [true]", "bool_false_true: [false, true]"),
    "s_seq_corrid_with_values": (" int32_false_true: [0, 1]", ""),
    "s_seq_corrid_fp32": ("TYPE_FP32 }", "TYPE_UINT64 }"),
    "s_seq_corrid_no_dtype": ("CONTROL_SEQUENCE_CORRID ", "CONTROL_SEQUENCE_CORRID data_type: TYPE_UINT64"),
    "s_seq_corrid_bool": ("TYPE_BOOL", "TYPE_UINT64"),
    # sequence strategies
    "s_seq_oldest_preferred_zero": ("preferred_batch_size: [0]", "preferred_batch_size: [1]"),
    "s_seq_oldest_preferred_above_max": ("[4, 16]", "[4, 8]"),
    "s_seq_oldest_preferred_mbs0": ("preferred_batch_size: [1] ", ""),
    "s_seq_direct_utilization_negative": ("-0.5", "0.5"),
    "s_seq_direct_utilization_above_one": ("1.5", "1.0"),
    "s_seq_batch_strategy_library": ('parameters { key: "TRITON_BATCH_STRATEGY_PATH" value { string_value: '
                                     '"/tmp/x.so" } }', ""),
    # sequence state
    "s_seq_state_two_initial": (f", {ZERO}", ""),
    "s_seq_state_initial_dtype": ("TYPE_INT32", "TYPE_FP32"),
    "s_seq_state_initial_no_name": ("initial_state [{ data_type", 'initial_state [{ name: "initial" data_type'),
    "s_seq_state_input_twice": ('input_name: "STATE_IN" output_name: "STATE_OUT2"',
                                'input_name: "STATE_IN2" output_name: "STATE_OUT2"'),
    "s_seq_state_initial_rank": ("dims: [2, 2]", "dims: [4]"),
    "s_seq_state_initial_variable": ('name: "init" data_type: TYPE_FP32 dims: [-1]',
                                     'name: "init" data_type: TYPE_FP32 dims: [4]'),
    "s_seq_state_initial_dim_mismatch": ("dims: [3]", "dims: [4]"),
    "s_seq_state_initial_no_data": ('name: "init" data_type: TYPE_FP32 dims: [4] }',
                                    'name: "init" data_type: TYPE_FP32 dims: [4] zero_data: true }'),
    "s_seq_state_initial_file_missing": ('data_file: "init.bin"', "zero_data: true"),
    # dynamic batching
    "s_db_max_batch_negative": ("max_batch_size: -1", "max_batch_size: 0"),
    "s_db_preferred_zero": ("[0]", "[1]"),
    "s_db_preferred_negative": ("[2, -4]", "[2, 4]"),
    "s_db_preferred_above_max": ("[4, 9]", "[4, 8]"),
    "s_db_preferred_mbs0": ("preferred_batch_size: [1] ", ""),
    "s_db_default_level_zero": ("priority_levels: 3", "priority_levels: 3 default_priority_level: 1"),
    "s_db_default_level_above": ("default_priority_level: 3", "default_priority_level: 2"),
    "s_db_policy_level_zero": ("key: 0", "key: 1"),
    "s_db_policy_level_above": ("key: 3", "key: 2"),
    "s_db_preserve_two_levels": ("priority_levels: 2", "priority_levels: 1"),
    "s_db_preserve_default_delay": ("DELAY", "REJECT"),
    "s_db_preserve_priority_delay": ("DELAY", "REJECT"),
    "s_db_preserve_delay_unused_level": ("DELAY", "REJECT"),
    "s_db_strategy_library_missing": ('parameters { key: "TRITON_BATCH_STRATEGY_PATH" value { string_value: '
                                      '"/nonexistent/batchstrategy.so" } }', ""),
    # transaction policy, response cache, version policy
    "s_tx_decoupled_cache": ("enable: true", "enable: false"),
    "s_rc_sequence": ("enable: true", "enable: false"),
    "s_rc_sequence_oldest_mbs0": ("response_cache { enable: true }", ""),
    "s_vp_specific_empty": ("specific { }", "specific { versions: [1] }"),
    "s_vp_latest_zero": ("num_versions: 0", "num_versions: 1"),
    "s_vp_latest_unset": ("latest { }", "latest { num_versions: 1 }"),
    "s_vp_specific_missing": ("[3]", "[1]"),
    "s_vp_specific_zero": ("[0]", "[1]"),
}
CASES = with_fixes(CASES, FIXES)
