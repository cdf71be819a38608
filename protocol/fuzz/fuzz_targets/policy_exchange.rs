//! Arbitrary offer sequences against the agent's side of the configuration exchange: never
//! panics, never applies a damaged or older policy, never applies the running one again, and
//! a refusal leaves the running policy in force. Each step takes a version byte, a flags byte
//! (bit 0: damage the hash, bit 1: the agent refuses it when applying) and a document of up to
//! 64 bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use parta_protocol::policy::{AgentPolicy, Decision, PolicyId, PolicyOffer, PolicyOutcome};

fuzz_target!(|data: &[u8]| {
    let mut agent = AgentPolicy::default();
    let mut highest: Option<u64> = None;
    let mut rest = data;
    while let [version, flags, len, tail @ ..] = rest {
        let n = usize::from(*len % 65).min(tail.len());
        let document = String::from_utf8_lossy(&tail[..n]).into_owned();
        rest = &tail[n..];
        let mut offer = PolicyOffer { id: PolicyId::of(u64::from(*version % 8), &document), document };
        if flags & 1 != 0 {
            offer.id.hash[0] ^= 1;
        }
        let before = agent.running();
        match agent.offer(&offer) {
            Decision::Apply => {
                assert_eq!(flags & 1, 0, "a damaged offer is applied");
                assert_ne!(before, Some(offer.id), "the running policy is applied again");
                assert!(highest.is_none_or(|h| offer.id.version >= h), "an older policy is applied");
                if flags & 2 == 0 {
                    agent.applied(offer.id);
                    highest = Some(offer.id.version);
                } else {
                    agent.refused(offer.id, "key", "refused");
                    assert_eq!(agent.running(), before, "a refusal changed the running policy");
                }
            }
            Decision::Answer(status) => {
                assert_eq!(status.id, offer.id);
                assert_eq!(agent.running(), before);
                if status.outcome == PolicyOutcome::Applied {
                    assert_eq!(before, Some(offer.id));
                }
            }
        }
    }
});
