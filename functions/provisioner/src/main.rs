//! The provisioner Lambda: builds the network a "Network Requested" event asks
//! for; see `tagpeer::provision` for what it decides.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    tagpeer::run_provisioner_lambda().await
}
