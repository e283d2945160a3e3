//! The requester Lambda: see `tagpeer::plan` for what it decides.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    tagpeer::run_lambda(tagpeer::Role::Requester).await
}
