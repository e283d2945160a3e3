//! The deploy path, exercised: `cargo lambda deploy` against moto's Lambda API
//! through the local cloud's endpoint, as it runs against AWS.

use std::process::Command;

use serde_json::{json, Value};
use tagpeer_tests::local::{bin_dir, LocalCloud};
use tagpeer_tests::*;

fn tool(name: &str) -> std::path::PathBuf {
    let path = repo_root().join(".venv/bin").join(name);
    assert!(path.exists(), "{} is missing: run `make venv` first", path.display());
    path
}

/// Runs a command with a person's credentials pointed at the local cloud; its JSON answer.
fn run(cloud: &LocalCloud, program: &std::path::Path, args: &[&str]) -> Value {
    let out = Command::new(program)
        .args(args)
        .env("AWS_ENDPOINT_URL", &cloud.endpoint)
        .env("AWS_ACCESS_KEY_ID", "123456789012-deployer")
        .env("AWS_SECRET_ACCESS_KEY", "local")
        .env("AWS_REGION", SEOUL)
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_SESSION_TOKEN")
        .current_dir(repo_root())
        .output()
        .expect("running the command");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{program:?} {args:?}: {}\n{stdout}", String::from_utf8_lossy(&out.stderr));
    // cargo lambda prints its progress before the JSON answer.
    let answer = stdout.find("\n{").map(|i| &stdout[i + 1..]).unwrap_or(&stdout);
    serde_json::from_str(answer.trim()).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

#[test]
fn cargo_lambda_deploys_the_three_functions_through_the_endpoint() {
    let cloud = LocalCloud::start();
    let env_file = std::env::temp_dir().join(format!("tagpeer-deploy-{}.env", std::process::id()));
    std::fs::write(
        &env_file,
        "TAGPEER_REGIONS=ap-northeast-2,ap-northeast-3\nTAGPEER_EVENT_BUS=default\nRUST_LOG=info\n",
    )
    .expect("an env file");
    let cargo_lambda = tool("cargo-lambda");
    let mut role: Option<String> = None;
    for function in ["tagpeer-requester", "tagpeer-accepter", "tagpeer-router"] {
        let binary = bin_dir().join(function);
        let mut args = vec![
            "lambda",
            "deploy",
            function,
            "--binary-path",
            binary.to_str().unwrap(),
            "--endpoint-url",
            &cloud.endpoint,
            "--region",
            SEOUL,
            "--env-file",
            env_file.to_str().unwrap(),
            "--timeout",
            "60",
            "--memory",
            "128",
            "--output-format",
            "json",
        ];
        // The first deploy creates the execution role, as it would on AWS; the others reuse it.
        if let Some(role) = &role {
            args.extend(["--iam-role", role.as_str()]);
        }
        let deployed = run(&cloud, &cargo_lambda, &args);
        assert_eq!(
            deployed["function_arn"],
            json!(format!("arn:aws:lambda:{SEOUL}:123456789012:function:{function}")),
            "{deployed}"
        );
        let config = run(
            &cloud,
            &tool("aws"),
            &[
                "lambda",
                "get-function-configuration",
                "--function-name",
                function,
                "--region",
                SEOUL,
                "--output",
                "json",
            ],
        );
        assert_eq!(config["Runtime"], json!("provided.al2023"));
        assert_eq!(config["Handler"], json!("bootstrap"));
        assert_eq!(config["Timeout"], json!(60));
        assert_eq!(config["Environment"]["Variables"]["TAGPEER_REGIONS"], json!("ap-northeast-2,ap-northeast-3"));
        role.get_or_insert(config["Role"].as_str().expect("a role").to_owned());
    }
    std::fs::remove_file(&env_file).ok();

    // The calls went through the endpoint to moto's Lambda and IAM, and were recorded.
    let calls = cloud.calls();
    let deployer: Vec<(String, String)> = calls
        .iter()
        .filter(|c| c["caller"] == json!("123456789012-deployer"))
        .map(|c| {
            (c["service"].as_str().unwrap_or_default().to_owned(), c["action"].as_str().unwrap_or_default().to_owned())
        })
        .collect();
    assert!(deployer.contains(&("iam".into(), "CreateRole".into())), "{deployer:?}");
    assert_eq!(
        deployer.iter().filter(|(s, a)| s == "lambda" && a == "POST /2015-03-31/functions").count(),
        3,
        "{deployer:?}"
    );
}
