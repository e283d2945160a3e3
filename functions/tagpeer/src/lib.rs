//! tagpeer: tag a VPC, get a working VPC peering across regions.
//!
//! This crate is the imperative shell over the functional core,
//! [`tagpeer_core`] (re-exported here module by module, so that one path
//! names each thing: `tagpeer::plan` is `tagpeer_core::plan`):
//!
//! - [`events`]: the events functions receive and send, and the [`plan::Scope`]
//!   each trigger decides;
//! - [`ports`]: the two ports a handler works through, the cloud and the event sink;
//! - [`aws`]: the one adapter to AWS, behind both ports; nothing else names an SDK type;
//! - [`app`]: the thin handler every Lambda runs, and its configuration;
//! - [`error`]: the shell's errors; [`telemetry`]: the JSON log; [`metrics`]:
//!   the metrics, as CloudWatch's embedded metric format.

pub mod app;
pub mod aws;
pub mod error;
pub mod events;
pub mod metrics;
pub mod ports;
pub mod telemetry;

pub use tagpeer_core::{cidr, graph, ids, intent, invariants, model, overview, plan, provision, reach, report, status};

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
            let (answer, mut lines) = app.invoke(&event.payload).await;
            // Each metrics line names the invocation it comes from, as Lambda's own log lines do.
            for line in &mut lines {
                line["RequestId"] = serde_json::Value::from(event.context.request_id.as_str());
            }
            metrics::publish(&lines);
            answer.map_err(lambda_runtime::Error::from)
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
            let calls = provisioner.calls();
            let answer = provisioner.handle(&event.payload).await;
            // Its account is the function's own, as its ARN names it.
            let account = event.context.invoked_function_arn.split(':').nth(4).and_then(|a| a.parse().ok());
            let region = std::env::var("AWS_REGION").ok().and_then(|r| r.parse().ok());
            if let (Some(account), Some(region)) = (account, region) {
                let source = metrics::Source::now("provisioner", region, account);
                let mut line = source.provisioning(provisioner.calls().since(calls), usize::from(answer.is_err()));
                line["RequestId"] = serde_json::Value::from(event.context.request_id.as_str());
                metrics::publish(&[line]);
            }
            answer.map_err(lambda_runtime::Error::from)
        },
    ))
    .await
}
