//! Every metric's name (without the `treeserve_` prefix).

/// Prefix of every metric.
pub const NAMESPACE: &str = "treeserve";
/// `treeserve_http_requests_total{route,method,status}`.
pub const HTTP_REQUESTS_TOTAL: &str = "http_requests_total";
/// `treeserve_http_request_duration_seconds{route}`.
pub const HTTP_REQUEST_DURATION_SECONDS: &str = "http_request_duration_seconds";
/// `treeserve_model_info{model,version,sha256}`.
pub const MODEL_INFO: &str = "model_info";
/// `treeserve_model_loads_total{outcome}`.
pub const MODEL_LOADS_TOTAL: &str = "model_loads_total";
/// `treeserve_http_requests_in_flight`.
pub const HTTP_REQUESTS_IN_FLIGHT: &str = "http_requests_in_flight";
/// `treeserve_batch_rows` (rows per `/score` request).
pub const BATCH_ROWS: &str = "batch_rows";
/// `treeserve_rejected_requests_total{reason}`.
pub const REJECTED_REQUESTS_TOTAL: &str = "rejected_requests_total";
/// `treeserve_model_last_swap_timestamp_seconds`.
pub const MODEL_LAST_SWAP_TIMESTAMP_SECONDS: &str = "model_last_swap_timestamp_seconds";
/// `treeserve_model_ready`.
pub const MODEL_READY: &str = "model_ready";
/// `treeserve_build_info{version}`.
pub const BUILD_INFO: &str = "build_info";
/// `treeserve_http_request_panics_total`.
pub const HTTP_REQUEST_PANICS_TOTAL: &str = "http_request_panics_total";
/// `treeserve_predictions_total{class,model,version}`.
pub const PREDICTIONS_TOTAL: &str = "predictions_total";
/// `treeserve_drift_psi{feature,model}`.
pub const DRIFT_PSI: &str = "drift_psi";
/// `treeserve_drift_out_of_range_total{feature,model,side}`.
pub const DRIFT_OUT_OF_RANGE_TOTAL: &str = "drift_out_of_range_total";
/// `treeserve_drift_window_rows{model}`.
pub const DRIFT_WINDOW_ROWS: &str = "drift_window_rows";
/// `treeserve_registry_up`.
pub const REGISTRY_UP: &str = "registry_up";
/// `treeserve_registry_last_contact_timestamp_seconds`.
pub const REGISTRY_LAST_CONTACT_TIMESTAMP_SECONDS: &str = "registry_last_contact_timestamp_seconds";
/// `treeserve_model_test_accuracy`.
pub const MODEL_TEST_ACCURACY: &str = "model_test_accuracy";
/// `treeserve_feedback_labels_total`.
pub const FEEDBACK_LABELS_TOTAL: &str = "feedback_labels_total";
/// `treeserve_feedback_remembered`.
pub const FEEDBACK_REMEMBERED: &str = "feedback_remembered";
/// `treeserve_feedback_file_rows_total`.
pub const FEEDBACK_FILE_ROWS_TOTAL: &str = "feedback_file_rows_total";
/// `treeserve_feedback_files_total`.
pub const FEEDBACK_FILES_TOTAL: &str = "feedback_files_total";
/// `treeserve_shadow_rows_total`.
pub const SHADOW_ROWS_TOTAL: &str = "shadow_rows_total";
/// `treeserve_shadow_agreed_rows_total`.
pub const SHADOW_AGREED_ROWS_TOTAL: &str = "shadow_agreed_rows_total";
/// `treeserve_shadow_agreement`.
pub const SHADOW_AGREEMENT: &str = "shadow_agreement";
/// `treeserve_shadow_abs_difference_total`.
pub const SHADOW_ABS_DIFFERENCE_TOTAL: &str = "shadow_abs_difference_total";
/// `treeserve_shadow_mean_abs_difference`.
pub const SHADOW_MEAN_ABS_DIFFERENCE: &str = "shadow_mean_abs_difference";
/// `treeserve_shadow_dropped_requests_total`.
pub const SHADOW_DROPPED_REQUESTS_TOTAL: &str = "shadow_dropped_requests_total";
/// `treeserve_live_labels_total`.
pub const LIVE_LABELS_TOTAL: &str = "live_labels_total";
/// `treeserve_live_correct_total`.
pub const LIVE_CORRECT_TOTAL: &str = "live_correct_total";
/// `treeserve_live_window_labels`.
pub const LIVE_WINDOW_LABELS: &str = "live_window_labels";
/// `treeserve_live_accuracy`.
pub const LIVE_ACCURACY: &str = "live_accuracy";
/// `treeserve_live_recall`.
pub const LIVE_RECALL: &str = "live_recall";
/// `treeserve_live_mae`.
pub const LIVE_MAE: &str = "live_mae";
/// `treeserve_live_rmse`.
pub const LIVE_RMSE: &str = "live_rmse";
/// `treeserve_live_label_delay_seconds_total`.
pub const LIVE_LABEL_DELAY_SECONDS_TOTAL: &str = "live_label_delay_seconds_total";

/// Every metric's name (without the `treeserve_` prefix), each documented in
/// `docs/metrics.md` (a unit test checks that the page names each one).
pub const NAMES: &[&str] = &[
    HTTP_REQUESTS_TOTAL,
    HTTP_REQUEST_DURATION_SECONDS,
    MODEL_INFO,
    MODEL_LOADS_TOTAL,
    HTTP_REQUESTS_IN_FLIGHT,
    BATCH_ROWS,
    REJECTED_REQUESTS_TOTAL,
    MODEL_LAST_SWAP_TIMESTAMP_SECONDS,
    MODEL_READY,
    BUILD_INFO,
    HTTP_REQUEST_PANICS_TOTAL,
    PREDICTIONS_TOTAL,
    DRIFT_PSI,
    DRIFT_OUT_OF_RANGE_TOTAL,
    DRIFT_WINDOW_ROWS,
    REGISTRY_UP,
    REGISTRY_LAST_CONTACT_TIMESTAMP_SECONDS,
    MODEL_TEST_ACCURACY,
    FEEDBACK_LABELS_TOTAL,
    FEEDBACK_REMEMBERED,
    FEEDBACK_FILE_ROWS_TOTAL,
    FEEDBACK_FILES_TOTAL,
    SHADOW_ROWS_TOTAL,
    SHADOW_AGREED_ROWS_TOTAL,
    SHADOW_AGREEMENT,
    SHADOW_ABS_DIFFERENCE_TOTAL,
    SHADOW_MEAN_ABS_DIFFERENCE,
    SHADOW_DROPPED_REQUESTS_TOTAL,
    LIVE_LABELS_TOTAL,
    LIVE_CORRECT_TOTAL,
    LIVE_WINDOW_LABELS,
    LIVE_ACCURACY,
    LIVE_RECALL,
    LIVE_MAE,
    LIVE_RMSE,
    LIVE_LABEL_DELAY_SECONDS_TOTAL,
];
