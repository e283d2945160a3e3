//! moto's server behind the local cloud's endpoint, for the in-process
//! tests, and the SDK clients that reach it.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use crate::*;
use aws_config::{BehaviorVersion, SdkConfig};
use aws_sdk_ec2::config::{Credentials, Region as SdkRegion};

/// The repository's root.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ sits in the repository").to_path_buf()
}

/// AWS's EC2 and STS as the in-process tests meet them: moto's server behind
/// the local cloud's endpoint, which answers as AWS does where moto does not
/// (asynchronous peering states, tags per account and region, race errors,
/// the quotas), with no function processes and no rules of its own: the tests
/// run the handlers. Started on a loopback port of the kernel's choosing, stopped on drop.
pub struct Moto {
    child: Child,
    pub endpoint: String,
}

impl Moto {
    /// Starts `python -m localcloud --no-functions` from the repository's
    /// virtual environment (made by `make venv`), with the tests' short
    /// lifecycle ([`local::TEST_LIFECYCLE`]).
    pub fn start() -> Self {
        let python = repo_root().join(".venv/bin/python");
        assert!(python.exists(), "{} is missing: run `make venv` first", python.display());
        // Port 0: it binds a port of the kernel's choosing and names it in its ready line.
        let mut child = Command::new(&python)
            .args(["-m", "localcloud", "--no-functions", "--port", "0"])
            .args(["--lifecycle", local::TEST_LIFECYCLE])
            .env("PYTHONPATH", repo_root().join("tests"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", python.display()));
        let endpoint = local::wait_until_ready(&mut child);
        Self { child, endpoint }
    }

    /// The standard AWS configuration, pointed at this server.
    pub async fn sdk_config(&self) -> SdkConfig {
        aws_config::defaults(BehaviorVersion::latest())
            .endpoint_url(&self.endpoint)
            .region(SdkRegion::new(SEOUL))
            .credentials_provider(Credentials::new("testing", "testing", None, None, "tagpeer-tests"))
            .load()
            .await
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An EC2 client for one region.
pub fn ec2(sdk: &SdkConfig, region: &str) -> aws_sdk_ec2::Client {
    aws_sdk_ec2::Client::from_conf(
        aws_sdk_ec2::config::Builder::from(sdk).region(SdkRegion::new(region.to_owned())).build(),
    )
}
