//! `LoopbackAcn::from_env`. Environment variables are process-global, so this file holds a
//! single test (each integration-test file is its own process) and nothing else here reads
//! or writes `CWTCH_LOOPBACK_DIR`.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions

use connectivity::{Acn, Error, LoopbackAcn, CWTCH_PORT, LOOPBACK_DIR_ENV};
use torv3::Identity;

#[tokio::test]
async fn from_env_requires_the_variable_and_uses_it() {
    assert_eq!(LOOPBACK_DIR_ENV, "CWTCH_LOOPBACK_DIR");

    std::env::remove_var(LOOPBACK_DIR_ENV);
    let e = LoopbackAcn::from_env().err().unwrap();
    assert!(
        matches!(
            e,
            Error::NotConfigured {
                var: "CWTCH_LOOPBACK_DIR"
            }
        ),
        "{e:?}"
    );
    assert!(e.to_string().contains("CWTCH_LOOPBACK_DIR"), "{e}");
    assert!(!e.is_retryable());

    std::env::set_var(LOOPBACK_DIR_ENV, "");
    let e = LoopbackAcn::from_env().err().unwrap();
    assert!(matches!(e, Error::NotConfigured { .. }), "{e:?}");

    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("from-env");
    std::env::set_var(LOOPBACK_DIR_ENV, &dir);
    let acn = LoopbackAcn::from_env().unwrap();
    std::env::remove_var(LOOPBACK_DIR_ENV);
    assert_eq!(acn.dir(), dir);
    assert!(dir.is_dir());
    let id = Identity::from_seed(&[1; 32]);
    let _l = acn.listen(&id, CWTCH_PORT).await.unwrap();
    assert!(dir.join(id.onion().as_str()).is_file());
}
