//! The provisioner's handler: one "Network Requested" event builds one network.

use aws_config::SdkConfig;
use serde_json::Value;

use super::config::regions_from_env;
use crate::aws::Ec2;
use crate::ids::Region;

/// The provisioner function: one "Network Requested" event builds one network.
#[derive(Clone, Debug)]
pub struct Provisioner {
    ec2: Ec2,
    regions: Vec<Region>,
    pool: Vec<ipnet::Ipv4Net>,
}

impl Provisioner {
    pub fn new(sdk: &SdkConfig, regions: Vec<Region>, pool: Vec<ipnet::Ipv4Net>) -> Self {
        Self { ec2: Ec2::new(sdk, &regions), regions, pool }
    }

    /// `AWS_REGION`, `TAGPEER_REGIONS` as for every function, and
    /// `TAGPEER_CIDR_POOL` (default 10.0.0.0/8,172.16.0.0/12,192.168.0.0/16).
    pub async fn from_env() -> Result<Self, String> {
        let (_, regions) = regions_from_env().map_err(|e| e.to_string())?;
        let pool = crate::provision::pool_from(std::env::var("TAGPEER_CIDR_POOL").ok().as_deref())
            .map_err(|e| e.to_string())?;
        let sdk = crate::aws::load_sdk_config().await;
        Ok(Self::new(&sdk, regions, pool))
    }

    /// The EC2 calls its clients sent so far (its metrics: [`crate::metrics`]).
    pub fn calls(&self) -> crate::ports::Calls {
        crate::ports::Cloud::calls(&self.ec2)
    }

    /// The regions the deployment spans; the first is where it runs when
    /// Lambda does not say (`AWS_REGION`).
    pub fn regions(&self) -> &[Region] {
        &self.regions
    }

    /// Builds what the event asks for, or resumes where an earlier delivery
    /// stopped; answers with what it did. Bad input and failed calls are
    /// logged and answered with an error.
    pub async fn handle(&self, payload: &Value) -> Result<String, String> {
        let event: aws_lambda_events::event::eventbridge::EventBridgeEvent<Value> =
            serde_json::from_value(payload.clone()).map_err(|e| {
                let e = crate::error::EventError::Envelope(e.to_string());
                tracing::error!(function = "provisioner", error = %e, "event rejected");
                e.to_string()
            })?;
        if (event.source.as_str(), event.detail_type.as_str())
            != (crate::events::SOURCE, crate::provision::NETWORK_REQUESTED)
        {
            let e = crate::error::EventError::Unexpected { event_source: event.source, detail_type: event.detail_type };
            tracing::error!(function = "provisioner", error = %e, "event rejected");
            return Err(e.to_string());
        }
        match crate::aws::provision::provision(&self.ec2, &self.regions, &self.pool, &event.detail).await {
            Ok(summary) => Ok(summary),
            Err(e) => {
                tracing::error!(function = "provisioner", error = %e, "network not built");
                Err(e.to_string())
            }
        }
    }
}
