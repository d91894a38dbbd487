//! An error with every cause below it, on one line: what the log shows of a failure, so the
//! cause chain is written once, where the failure is logged, and never flattened before.

/// `error: its cause: the cause of that: …`.
pub fn with_causes(error: &dyn std::error::Error) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}
