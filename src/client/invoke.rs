//! `sluice invoke NAME`: a sync call, or an async one (optionally followed live until it is final).

use std::{io::Read, path::PathBuf};

use anyhow::Context;
use clap::Args;
use reqwest::Method;
use sluice_contracts::names::http_headers;

use super::{Gateway, watch};
use crate::args::GatewayClientArgs;

#[derive(Args)]
pub struct InvokeArgs {
    /// Function name.
    pub name: String,
    /// Request body (default: read from stdin when it is not a terminal).
    #[arg(short, long, conflicts_with = "data_file")]
    pub data: Option<String>,
    /// Read the request body from this file.
    #[arg(long)]
    pub data_file: Option<PathBuf>,
    /// Queue the call instead of waiting for the function's response.
    #[arg(long = "async")]
    pub is_async: bool,
    /// URL the result is POSTed to (async calls).
    #[arg(long, requires = "is_async")]
    pub callback: Option<String>,
    /// Call id (makes the call idempotent).
    #[arg(long)]
    pub call_id: Option<String>,
    /// With --async: follow the call (a progress bar with the function's message) until it is final, then
    /// print its record.
    #[arg(long, requires = "is_async")]
    pub wait: bool,
    /// With --wait: one line per change instead of a progress bar (the default when stderr is not a terminal).
    #[arg(long, requires = "wait")]
    pub plain: bool,
    /// HTTP method of a sync call.
    #[arg(long, default_value = "POST")]
    pub method: Method,
    /// Content-Type of the body.
    #[arg(long)]
    pub content_type: Option<String>,
    #[command(flatten)]
    pub gateway: GatewayClientArgs,
}

fn body(args: &InvokeArgs) -> anyhow::Result<Vec<u8>> {
    if let Some(data) = &args.data {
        return Ok(data.clone().into_bytes());
    }
    if let Some(file) = &args.data_file {
        return std::fs::read(file).with_context(|| format!("reading {}", file.display()));
    }
    let mut input = Vec::new();
    if !std::io::IsTerminal::is_terminal(&std::io::stdin()) {
        std::io::stdin().read_to_end(&mut input).context("reading stdin")?;
    }
    Ok(input)
}

pub async fn run(args: InvokeArgs) -> anyhow::Result<()> {
    let gateway = Gateway::new(args.gateway.clone());
    let body = body(&args)?;
    let (method, route) =
        if args.is_async { (Method::POST, "async-function") } else { (args.method.clone(), "function") };
    let mut request = gateway.request(method, &format!("/{route}/{}", gateway.qualified(&args.name))).body(body);
    if let Some(content_type) = &args.content_type {
        request = request.header(reqwest::header::CONTENT_TYPE, content_type);
    }
    if let Some(callback) = &args.callback {
        request = request.header(http_headers::CALLBACK_URL, callback);
    }
    if let Some(id) = &args.call_id {
        request = request.header(http_headers::CALL_ID, id);
    }
    let response = gateway.send_raw(request).await?;
    if !args.is_async {
        let status = response.status();
        let bytes = response.bytes().await.context("reading the function's response")?;
        std::io::Write::write_all(&mut std::io::stdout(), &bytes)?;
        anyhow::ensure!(status.is_success(), "function answered {status}");
        return Ok(());
    }
    let response = Gateway::check(response).await?;
    let call_id = response
        .headers()
        .get(http_headers::CALL_ID)
        .and_then(|v| v.to_str().ok())
        .context("the gateway's 202 has no X-Call-Id")?
        .to_owned();
    if !args.wait {
        println!("{call_id}");
        return Ok(());
    }
    let record = watch::watch(&gateway, &call_id, args.plain).await?;
    watch::conclude(&record)
}
