//! A host's alert channels: Telegram, webhook or command.

use super::Resolver;
use super::host::HostDraft;
use crate::diagnostic::Diagnostic;
use crate::model::values::{check_chat_id, check_name, check_url};
use crate::model::{
    AlertChannel, AlertKind, DEFAULT_ALERT_REPEAT, DEFAULT_TELEGRAM_API, Duration, WebhookUrl,
};
use crate::secret::{SecretRef, SecretSource};
use crate::syntax::Node;

/// How `alert` is written; also the help when a channel has no kind or several.
pub(super) const USAGE: &str = "`alert \"NAME\" webhook=\"https://…\"`, `alert \"NAME\" telegram-chat=\"-100…\" bot-token=\"env:VAR\"` or `alert \"NAME\" command=\"…\"`";

/// A `webhook=` value as written, before it becomes a [`WebhookUrl`].
enum WebhookSource {
    Literal(String),
    Secret(SecretSource),
}

pub(super) fn alert(r: &mut Resolver<'_, '_>, c: Node<'_>, h: &mut HostDraft) {
    match channel(r, c) {
        Some(ch) => h.host.alerts.push(ch),
        None => h.broken_alerts.extend(c.key_arg().map(str::to_string)),
    }
}

fn channel(r: &mut Resolver<'_, '_>, c: Node<'_>) -> Option<AlertChannel> {
    let name = r.dec.arg_parsed(c, 0, "alert name", |s| {
        check_name(s).map(|()| s.to_string())
    })?;
    let repeat = r
        .dec
        .prop_parsed(c, "repeat", Duration::parse)
        .unwrap_or(DEFAULT_ALERT_REPEAT);
    let insecure = r.dec.prop_bool(c, "insecure").unwrap_or(false);
    let url = |s: &str| check_url(s, insecure).map(|()| s.to_string());
    let chat = r.dec.prop_parsed(c, "telegram-chat", |s| {
        check_chat_id(s).map(|()| s.to_string())
    });
    let token = r.dec.prop_parsed(c, "bot-token", SecretSource::parse);
    // A webhook URL is a credential: `env:`/`file:`/`cmd:`/`age:` name a
    // secret source (no URL starts with those), anything else is the URL.
    let webhook = r.dec.prop_parsed(c, "webhook", |s| {
        if ["env:", "file:", "cmd:", "age:"]
            .iter()
            .any(|p| s.starts_with(p))
        {
            SecretSource::parse(s).map(WebhookSource::Secret)
        } else {
            url(s).map(WebhookSource::Literal)
        }
    });
    let command = r.dec.prop_str(c, "command");
    let api = match c.prop("api") {
        Some(_) => r.dec.prop_parsed(c, "api", url),
        None => Some(DEFAULT_TELEGRAM_API.into()),
    };
    // Counted by what was written, so a value that failed to decode
    // (reported already) is not also "no channel".
    let kinds = usize::from(c.prop("telegram-chat").is_some() || c.prop("bot-token").is_some())
        + usize::from(c.prop("webhook").is_some())
        + usize::from(c.prop("command").is_some());
    if kinds != 1 {
        r.dec.error(
            Diagnostic::error(
                c.span(),
                format!("alert `{name}` needs exactly one kind of channel"),
            )
            .label(if kinds == 0 {
                "no channel"
            } else {
                "several channels"
            })
            .help(format!("write {USAGE}")),
        );
        return None;
    }
    let kind = if c.prop("webhook").is_some() {
        AlertKind::Webhook {
            url: match webhook? {
                WebhookSource::Literal(u) => WebhookUrl::Literal(u),
                WebhookSource::Secret(source) => WebhookUrl::Secret(SecretRef {
                    name: format!("{name}-webhook"),
                    source,
                    span: c.span(),
                }),
            },
            insecure,
        }
    } else if c.prop("command").is_some() {
        AlertKind::Command { command: command? }
    } else {
        let (Some(chat), Some(token), Some(api)) = (chat, token, api) else {
            if c.prop("telegram-chat").is_none() || c.prop("bot-token").is_none() {
                r.dec.error(
                    Diagnostic::error(c.span(), format!("telegram alert `{name}` needs both `telegram-chat` and `bot-token`"))
                        .help("write `alert \"NAME\" telegram-chat=\"-100…\" bot-token=\"env:TELEGRAM_BOT_TOKEN\"`"),
                );
            }
            return None;
        };
        AlertKind::Telegram {
            chat,
            token: SecretRef {
                name: format!("{name}-bot-token"),
                source: token,
                span: c.span(),
            },
            api,
        }
    };
    Some(AlertChannel {
        name,
        span: c.span(),
        kind,
        repeat,
    })
}
