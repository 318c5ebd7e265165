//! The configuration as channel settings: the one place `[notifications]`, `[email]`,
//! `[[targets]]` and `[[users]].targets` become what each channel is built from
//! ([`ChannelSettings`]), with every target named by its qualified name.

use super::{Config, TargetConfig};
use crate::channels::settings::{
    ChannelSettings, Named, SlackApiSettings, SlackWebhookSettings, SmtpSettings, WebhookSettings,
};
use crate::model::TargetType;

impl Config {
    /// The settings of every channel, from this configuration.
    pub fn channel_settings(&self) -> ChannelSettings {
        let dispatch_timeout = self.notifications.dispatch_timeout;
        let webhook = &self.notifications.webhook;
        ChannelSettings {
            webhook: WebhookSettings {
                endpoint: webhook.endpoint.clone(),
                signing_secret: webhook.signing_secret.clone(),
                targets: self.targets_of(TargetType::Webhook, |t| t.url.clone()),
            },
            smtp: SmtpSettings {
                dispatch_timeout,
                email: self.email.clone(),
                targets: self.targets_of(TargetType::Smtp, |t| t.smtp.clone()),
            },
            slack_webhook: SlackWebhookSettings {
                dispatch_timeout,
                targets: self.targets_of(TargetType::SlackWebhook, |t| t.url.clone()),
            },
            slack_api: SlackApiSettings {
                dispatch_timeout,
                targets: self.targets_of(TargetType::SlackApi, |t| t.slack_api.clone()),
            },
        }
    }

    /// The targets of `target_type`, global ones by `name` and users' own by `username/name`
    /// ([`crate::model::TargetRef::qualified_name`]), each as `settings` makes it.
    fn targets_of<T>(
        &self,
        target_type: TargetType,
        settings: impl Fn(&TargetConfig) -> T,
    ) -> Named<T> {
        let global = self.targets.iter().map(|t| (t.name.clone(), t));
        let owned = self.users.iter().flat_map(|u| {
            u.targets
                .iter()
                .map(move |t| (format!("{}/{}", u.username, t.name), t))
        });
        global
            .chain(owned)
            .filter(|(_, t)| t.target_type == target_type)
            .map(|(name, t)| (name, settings(t)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::channels::settings::{
        SlackApiTarget, SmtpAuthSettings, SmtpTarget, SmtpTlsSettings,
    };
    use crate::secret::Secret;

    fn config(toml: &str) -> Config {
        Config::from_toml_str(toml, "test.toml", &|_| None).unwrap()
    }

    /// A `[[targets]]` entry (`[[users.targets]]` with `table`) of `kind` named `name`, with
    /// `keys` as TOML lines.
    fn target(table: &str, kind: &str, name: &str, keys: &str) -> String {
        format!(
            "[[{table}]]\ntype = \"{kind}\"\nname = \"{name}\"\nnotify_on = [\"run_failure\"]\n{keys}"
        )
    }

    #[test]
    fn each_channel_gets_its_targets_by_qualified_name() {
        let toml = [
            "[notifications]\ndispatch_timeout = \"7s\"\n".to_string(),
            "[notifications.webhook]\nendpoint = \"http://127.0.0.1:9/endpoint\"\n".to_string(),
            target(
                "targets",
                "webhook",
                "ops",
                "url = \"http://127.0.0.1:9/ops\"\n",
            ),
            target(
                "targets",
                "slack_api",
                "team-api",
                "token = \"xoxb-global-token\"\nchannel = \"C0GLOBAL\"\n",
            ),
            "[[users]]\nusername = \"alice\"\nemail = \"alice@example.com\"\n".to_string(),
            target(
                "users.targets",
                "webhook",
                "ops",
                "url = \"http://127.0.0.1:9/alice-ops\"\n",
            ),
        ];
        let settings = config(&toml.concat()).channel_settings();
        assert_eq!(
            settings.webhook,
            WebhookSettings {
                endpoint: Some("http://127.0.0.1:9/endpoint".to_string()),
                signing_secret: None,
                targets: vec![
                    (
                        "ops".to_string(),
                        Some(Secret::new("http://127.0.0.1:9/ops"))
                    ),
                    (
                        "alice/ops".to_string(),
                        Some(Secret::new("http://127.0.0.1:9/alice-ops"))
                    ),
                ],
            }
        );
        assert_eq!(
            settings.slack_api,
            SlackApiSettings {
                dispatch_timeout: Duration::from_secs(7),
                targets: vec![(
                    "team-api".to_string(),
                    SlackApiTarget {
                        token: Some(Secret::new("xoxb-global-token")),
                        channel: Some("C0GLOBAL".to_string()),
                        api_base_url: crate::config::DEFAULT_SLACK_API_BASE_URL.to_string(),
                    }
                )],
            }
        );
        assert!(settings.slack_webhook.targets.is_empty());
        assert!(settings.smtp.targets.is_empty());
        assert_eq!(settings.smtp.dispatch_timeout, Duration::from_secs(7));
    }

    #[test]
    fn email_settings_carry_over_with_the_client_certificate_paired() {
        let toml = [
            "[email]\nfrom = \"Herald <herald@example.com>\"\nsmarthost = \"mail:25\"\n\
             hello = \"mx.example.com\"\n",
            "[email.auth]\nusername = \"u\"\npassword = \"p\"\nidentity = \"id\"\n",
            "[email.tls]\nstarttls = true\nserver_name = \"mail.example.com\"\n\
             cert_file = \"/etc/herald/cert.pem\"\ncert_key_file = \"/etc/herald/key.pem\"\n",
            "[[users]]\nusername = \"alice\"\nemail = \"alice@example.com\"\n",
            &target(
                "users.targets",
                "smtp",
                "mine",
                "recipients = [\"alice@example.com\"]\nhost = \"mail.example.com\"\nport = 587\n\
                 sender = \"alice@example.com\"\n",
            ),
        ];
        let settings = config(&toml.concat()).channel_settings().smtp;
        assert_eq!(
            settings.email.from.as_deref(),
            Some("Herald <herald@example.com>")
        );
        assert_eq!(settings.email.smarthost.as_deref(), Some("mail:25"));
        assert_eq!(settings.email.hello, "mx.example.com");
        assert_eq!(
            settings.email.auth,
            SmtpAuthSettings {
                username: Some("u".to_string()),
                password: Some(Secret::new("p")),
                password_file: None,
                identity: Some("id".to_string()),
            }
        );
        assert_eq!(
            settings.email.tls,
            SmtpTlsSettings {
                starttls: true,
                server_name: Some("mail.example.com".to_string()),
                cert_file: Some("/etc/herald/cert.pem".into()),
                cert_key_file: Some("/etc/herald/key.pem".into()),
                ..SmtpTlsSettings::default()
            }
        );
        assert_eq!(
            settings.email.tls.client_cert(),
            Some(("/etc/herald/cert.pem".into(), "/etc/herald/key.pem".into()))
        );
        assert_eq!(
            settings.targets,
            vec![(
                "alice/mine".to_string(),
                SmtpTarget {
                    recipients: vec!["alice@example.com".to_string()],
                    host: Some("mail.example.com".to_string()),
                    port: Some(587),
                    sender: Some("alice@example.com".to_string()),
                    ..SmtpTarget::default()
                }
            )]
        );
    }
}
