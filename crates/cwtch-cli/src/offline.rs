//! A network that never connects: for the subcommands that read or change a profile without
//! a running `cwtch run` (contacts, messages), so that loading the profile does not bring it
//! online. Nothing is hosted and nothing is dialled; the library's engine just waits.

use async_trait::async_trait;
use cwtch::connectivity::{Acn, AcnStatus, BoxStream, Error, IsolationKey, OnionListener};
use cwtch::{Identity, Onion};
use tokio::sync::watch;

pub(crate) struct OfflineAcn {
    status: watch::Sender<AcnStatus>,
}

impl OfflineAcn {
    pub(crate) fn new() -> OfflineAcn {
        let (status, _) = watch::channel(AcnStatus::new(0, "offline"));
        OfflineAcn { status }
    }
}

#[async_trait]
impl Acn for OfflineAcn {
    async fn listen(
        &self,
        _identity: &Identity,
        _port: u16,
    ) -> Result<Box<dyn OnionListener>, Error> {
        // Never online; the engine's cancellation ends the wait.
        std::future::pending().await
    }

    async fn connect(
        &self,
        _onion: &Onion,
        _port: u16,
        _isolation: &IsolationKey,
    ) -> Result<BoxStream, Error> {
        std::future::pending().await
    }

    fn status(&self) -> watch::Receiver<AcnStatus> {
        self.status.subscribe()
    }

    async fn restart(&self) -> Result<(), Error> {
        Ok(())
    }

    async fn close(&self) {}

    fn is_anonymous(&self) -> bool {
        // It sends nothing at all.
        true
    }

    fn name(&self) -> &'static str {
        "offline"
    }
}
