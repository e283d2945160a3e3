//! tagpeer: tag a VPC, get a working VPC peering across regions.
//!
//! The functional core is [`intent`] (the tag grammar), [`cidr`], [`plan`] (the
//! planner) and [`status`] (the words people read); [`aws`] is the one adapter
//! to AWS; [`app`] is the thin handler every Lambda runs.

pub mod app;
pub mod aws;
pub mod cidr;
pub mod error;
pub mod events;
pub mod ids;
pub mod intent;
pub mod invariants;
pub mod model;
pub mod plan;
pub mod provision;
pub mod reach;
pub mod report;
pub mod status;
pub mod telemetry;

pub use app::{App, Config, Provisioner, Report};
pub use plan::Role;

/// Runs one function on the Lambda runtime: configuration and clients once,
/// then every event through the shared handler.
pub async fn run_lambda(role: Role) -> Result<(), lambda_runtime::Error> {
    telemetry::init();
    let app = App::from_env(role).await.inspect_err(|e| tracing::error!(error = %e, "configuration"))?;
    let app = &app;
    lambda_runtime::run(lambda_runtime::service_fn(
        move |event: lambda_runtime::LambdaEvent<serde_json::Value>| async move {
            app.handle(&event.payload).await.map_err(lambda_runtime::Error::from)
        },
    ))
    .await
}

/// Runs the provisioner on the Lambda runtime.
pub async fn run_provisioner_lambda() -> Result<(), lambda_runtime::Error> {
    telemetry::init();
    let provisioner = Provisioner::from_env().await.inspect_err(|e| tracing::error!(error = %e, "configuration"))?;
    let provisioner = &provisioner;
    lambda_runtime::run(lambda_runtime::service_fn(
        move |event: lambda_runtime::LambdaEvent<serde_json::Value>| async move {
            provisioner.handle(&event.payload).await.map_err(lambda_runtime::Error::from)
        },
    ))
    .await
}
