//! `wasp token create|ls|revoke`: thin clients of the admin API's `/v1/tokens` routes (scope
//! `admin`), with the same `--url` / `WASP_URL` and `--token` / `WASP_ADMIN_TOKEN` as every
//! command that talks to a server.
//!
//! May call the admin API over HTTP.

use clap::{Args, Subcommand};
use reqwest::{Method, Request};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{
    admin::{AdminClient, Connection},
    table::Table,
};

/// `wasp token …`.
#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a token with scopes; its secret is shown once.
    Create(CreateArgs),
    /// List the tokens (never their secrets).
    Ls(ListArgs),
    /// Revoke a token: it stops working at once.
    Revoke(RevokeArgs),
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    #[command(flatten)]
    pub connection: Connection,
    /// What the token is for, such as `billing-service`.
    #[arg(long)]
    pub name: String,
    /// A scope it gets (repeat for more): messages:send, messages:read, plugins:write,
    /// plugins:read, templates:write, contacts:write, admin.
    #[arg(long = "scope", required = true, num_args = 1..)]
    pub scopes: Vec<String>,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    #[command(flatten)]
    pub connection: Connection,
}

#[derive(Debug, Args)]
pub struct RevokeArgs {
    #[command(flatten)]
    pub connection: Connection,
    /// The token's id (`tok_…`), as `wasp token ls` shows it.
    pub id: String,
}

/// A token as the API shows it; `token` only in the answer to a create.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct TokenView {
    pub id: String,
    pub name: String,
    pub scopes: Vec<String>,
    pub created_at: Value,
    pub revoked_at: Value,
    pub token: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct TokenList {
    pub tokens: Vec<TokenView>,
}

impl AdminClient {
    /// `POST /v1/tokens {"name", "scopes"}`.
    pub fn create_token_request(&self, name: &str, scopes: &[String]) -> reqwest::Result<Request> {
        self.request(Method::POST, &["v1", "tokens"])
            .json(&json!({"name": name, "scopes": scopes}))
            .build()
    }

    /// `GET /v1/tokens`.
    pub fn list_tokens_request(&self) -> reqwest::Result<Request> {
        self.request(Method::GET, &["v1", "tokens"]).build()
    }

    /// `DELETE /v1/tokens/{id}`.
    pub fn revoke_token_request(&self, id: &str) -> reqwest::Result<Request> {
        self.request(Method::DELETE, &["v1", "tokens", id]).build()
    }
}

pub async fn run(command: TokenCommand) -> anyhow::Result<()> {
    match command {
        TokenCommand::Create(args) => {
            let client = AdminClient::new(&args.connection)?;
            let view: TokenView = client
                .send(client.create_token_request(&args.name, &args.scopes))
                .await?;
            print!("{}", render_created(&view));
        }
        TokenCommand::Ls(args) => {
            let client = AdminClient::new(&args.connection)?;
            let list: TokenList = client.send(client.list_tokens_request()).await?;
            print!("{}", render_list(&list));
        }
        TokenCommand::Revoke(args) => {
            let client = AdminClient::new(&args.connection)?;
            let _: Value = client.send(client.revoke_token_request(&args.id)).await?;
            println!("{}: revoked", args.id);
        }
    }
    Ok(())
}

/// A JSON time as text; `-` for none.
fn time(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        Value::Null => "-".to_owned(),
        other => other.to_string(),
    }
}

pub fn render_created(view: &TokenView) -> String {
    let mut table = Table::new(&["ID", "NAME", "SCOPES", "CREATED"]);
    table.row(vec![
        view.id.clone(),
        view.name.clone(),
        view.scopes.join(","),
        time(&view.created_at),
    ]);
    format!(
        "{}\ntoken  {}\n\nthe token is shown only now; keep it somewhere safe\n",
        table.render(),
        view.token.as_deref().unwrap_or("-"),
    )
}

pub fn render_list(list: &TokenList) -> String {
    if list.tokens.is_empty() {
        return "no tokens; create one with `wasp token create --name NAME --scope SCOPE`\n".to_owned();
    }
    let mut table = Table::new(&["ID", "NAME", "SCOPES", "CREATED", "REVOKED"]);
    for token in &list.tokens {
        table.row(vec![
            token.id.clone(),
            token.name.clone(),
            token.scopes.join(","),
            time(&token.created_at),
            time(&token.revoked_at),
        ]);
    }
    table.render()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client() -> AdminClient {
        AdminClient::new(&Connection {
            url: "http://127.0.0.1:8080".to_owned(),
            token: Some("secret".to_owned()),
        })
        .unwrap()
    }

    #[test]
    fn token_requests_have_the_documented_shapes() {
        let client = client();
        let create = client
            .create_token_request("billing", &["messages:send".to_owned()])
            .unwrap();
        assert_eq!(create.method(), Method::POST);
        assert_eq!(create.url().path(), "/v1/tokens");
        let body: Value = serde_json::from_slice(create.body().and_then(|body| body.as_bytes()).unwrap()).unwrap();
        assert_eq!(body, json!({"name": "billing", "scopes": ["messages:send"]}));
        assert_eq!(
            create
                .headers()
                .get(reqwest::header::AUTHORIZATION)
                .and_then(|value| value.to_str().ok()),
            Some("Bearer secret")
        );
        let list = client.list_tokens_request().unwrap();
        assert_eq!((list.method(), list.url().path()), (&Method::GET, "/v1/tokens"));
        let revoke = client.revoke_token_request("tok_1").unwrap();
        assert_eq!(
            (revoke.method(), revoke.url().path()),
            (&Method::DELETE, "/v1/tokens/tok_1")
        );
    }

    #[test]
    fn tables_show_tokens_and_the_secret_only_when_created() {
        let list = TokenList {
            tokens: vec![TokenView {
                id: "tok_1".into(),
                name: "billing".into(),
                scopes: vec!["messages:send".into(), "messages:read".into()],
                created_at: json!("2026-01-01T00:00:00Z"),
                revoked_at: Value::Null,
                token: None,
            }],
        };
        assert_eq!(
            render_list(&list),
            "ID     NAME     SCOPES                       CREATED               REVOKED\n\
             tok_1  billing  messages:send,messages:read  2026-01-01T00:00:00Z  -\n"
        );
        let created = TokenView {
            token: Some("wasp_abc".into()),
            ..list.tokens[0].clone()
        };
        assert!(render_created(&created).contains("token  wasp_abc\n"));
        assert_eq!(
            render_list(&TokenList::default()),
            "no tokens; create one with `wasp token create --name NAME --scope SCOPE`\n"
        );
    }
}
