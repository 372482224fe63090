//! A channel ready to talk to its provider, built from a bot's settings:
//! what the server sends and fetches through, whatever the kind.

use confab_model::{Channel, Media, OutboundContent, PhoneNumber};

use crate::media::{Fetched, MediaError, MediaLimits};
use crate::meta::MetaClient;
use crate::settings::Config;
use crate::twilio::TwilioClient;
use crate::{SendError, Sent};

pub enum Client {
    Twilio(TwilioClient),
    Meta(MetaClient),
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Client({}, {})", self.channel(), self.sender())
    }
}

impl Client {
    /// `http` calls the provider's API, `media_http` downloads media (see
    /// [`crate::media::client`]); both may be shared by every channel.
    pub fn new(config: Config, http: reqwest::Client, media_http: reqwest::Client) -> Client {
        match config {
            Config::Twilio(c) => Client::Twilio(TwilioClient::sharing(c, http, media_http)),
            Config::Meta(c) => Client::Meta(MetaClient::sharing(c, http, media_http)),
        }
    }

    pub fn channel(&self) -> Channel {
        match self {
            Client::Twilio(_) => Channel::Twilio,
            Client::Meta(_) => Channel::Meta,
        }
    }

    /// Our address as the provider knows it: the Twilio sender's number,
    /// the Meta phone number id.
    pub fn sender(&self) -> String {
        match self {
            Client::Twilio(c) => c.config().from.as_str().to_string(),
            Client::Meta(c) => c.config().phone_number_id.clone(),
        }
    }

    /// Sends `content` to `to`. `status_callback` is where Twilio reports
    /// delivery progress (Meta reports to the app's webhook).
    pub async fn send(
        &self,
        to: &PhoneNumber,
        content: &OutboundContent,
        status_callback: Option<&str>,
    ) -> Result<Sent, SendError> {
        match self {
            Client::Twilio(c) => c.send(to, content, status_callback).await,
            Client::Meta(c) => c.send(to, content).await,
        }
    }

    /// Fetches what a contact sent: Twilio by the media's URL, Meta by its
    /// media id.
    pub async fn fetch_media(
        &self,
        media: &Media,
        limits: &MediaLimits,
    ) -> Result<Fetched, MediaError> {
        match self {
            Client::Twilio(c) => match media.url.as_deref() {
                Some(url) => c.fetch_media(url, limits).await,
                None => Err(MediaError::NotFound),
            },
            Client::Meta(c) => match media.provider_id.as_deref() {
                Some(id) => c.fetch_media(id, limits).await,
                None => Err(MediaError::NotFound),
            },
        }
    }
}
