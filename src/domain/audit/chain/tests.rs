//! Tests of the hash chain, the head signatures and the verifier.

use super::*;
use crate::domain::Clock;
use crate::domain::audit::{EventType, Outcome};

fn event(detail: &str) -> AuditEvent {
    let mut event = AuditEvent::new(
        EventType::Login,
        Outcome::Success,
        &crate::domain::RequestContext::default(),
        crate::domain::SystemClock.now(),
    );
    event.detail = Some(detail.to_owned());
    event
}

fn chain(events: &[AuditEvent]) -> Vec<Link> {
    let mut previous = GENESIS;
    let mut links = Vec::new();
    for (i, event) in events.iter().enumerate() {
        let seq = i as i64 + 1;
        let hash = link(&previous, seq, event);
        links.push(Link {
            seq: Some(seq),
            prev_hash: Some(previous.to_vec()),
            hash: Some(hash.to_vec()),
            event: event.clone(),
        });
        previous = hash;
    }
    links
}

fn verify(links: &[Link], head_seq: i64, head: &[u8]) -> Report {
    let mut verifier = Verifier::default();
    for link in links {
        verifier.check(link);
    }
    verifier.finish(head_seq, head)
}

#[test]
fn an_actor_is_hashed_and_an_event_without_one_hashes_as_before() {
    let plain = event("unlock");
    let before = String::from_utf8(canonical(&plain)).unwrap_or_default();
    assert!(before.ends_with(r#","success","unlock"]"#), "{before}");
    let mut acted = plain.clone();
    acted.actor_id = Some(crate::domain::UserId::new());
    assert_ne!(link(&GENESIS, 1, &plain), link(&GENESIS, 1, &acted));
}

#[test]
fn a_client_is_hashed_and_never_hashes_as_an_actor() {
    let id = crate::domain::UserId::new();
    let mut acted = event("client");
    acted.actor_id = Some(id);
    let mut concerning = event("client");
    concerning.client_id = Some(id.to_string());
    assert_ne!(link(&GENESIS, 1, &acted), link(&GENESIS, 1, &concerning));
    let mut both = acted.clone();
    both.client_id = Some("grafana".to_owned());
    let text = String::from_utf8(canonical(&both)).unwrap_or_default();
    assert!(text.ends_with(&format!(r#","client","{id}","grafana"]"#)), "{text}");
    let plain = event("client");
    let text = String::from_utf8(canonical(&concerning)).unwrap_or_default();
    assert!(text.ends_with(&format!(r#","client",null,"{id}"]"#)), "{text}");
    assert_ne!(link(&GENESIS, 1, &plain), link(&GENESIS, 1, &concerning));
}

#[test]
fn a_head_signature_holds_for_its_position_hash_time_and_link_only() {
    let key = [7; 32];
    let at = crate::domain::SystemClock.now();
    let signature = sign_head(&key, 3, &[1; 32], at, &GENESIS);
    assert!(head_signature_holds(&key, &signature));
    assert!(!head_signature_holds(&[8; 32], &signature));
    assert!(!head_signature_holds(&key, &HeadSignature { seq: 4, ..signature.clone() }));
    let other_hash = HeadSignature { hash: vec![2; 32], ..signature.clone() };
    assert!(!head_signature_holds(&key, &other_hash));
    let later = at + chrono::Duration::minutes(5);
    assert!(!head_signature_holds(&key, &HeadSignature { signed_at: later, ..signature.clone() }));
    let relinked = HeadSignature { previous: Some(vec![3; 32]), ..signature.clone() };
    assert!(!head_signature_holds(&key, &relinked));
    let unlinked = HeadSignature { previous: None, ..signature };
    assert!(!head_signature_holds(&key, &unlinked), "a chained signature is not an old one");
}

#[test]
fn a_signature_from_before_chaining_still_holds() {
    let key = [7; 32];
    let old = HeadSignature {
        seq: 3,
        hash: vec![1; 32],
        signature: sign_head_unlinked(&key, 3, &[1; 32]),
        signed_at: crate::domain::SystemClock.now(),
        previous: None,
    };
    assert!(head_signature_holds(&key, &old));
    assert!(!head_signature_holds(&key, &HeadSignature { seq: 4, ..old }));
}

#[test]
fn signatures_chain_from_old_ones_and_a_removed_one_breaks_the_chain() {
    let key = [7; 32];
    let at = crate::domain::SystemClock.now();
    let old = HeadSignature {
        seq: 1,
        hash: vec![1; 32],
        signature: sign_head_unlinked(&key, 1, &[1; 32]),
        signed_at: at,
        previous: None,
    };
    let first = sign_head(&key, 2, &[2; 32], at, &GENESIS);
    let second = sign_head(&key, 3, &[3; 32], at, &first.signature);
    let third = sign_head(&key, 4, &[4; 32], at, &second.signature);
    let problems = |signatures: &[&HeadSignature]| {
        let mut chain = SignatureChain::default();
        signatures.iter().filter_map(|s| chain.check(s)).collect::<Vec<_>>()
    };
    assert!(problems(&[&old, &first, &second, &third]).is_empty());
    assert_eq!(problems(&[&old, &first, &third]).len(), 1, "the second removed");
    assert_eq!(problems(&[&old, &second, &third]).len(), 1, "the first removed");
    assert_eq!(problems(&[&first, &old, &second]).len(), 2, "an old one after a chained one");
    let restart = sign_head(&key, 5, &[5; 32], at, &GENESIS);
    assert_eq!(problems(&[&first, &second, &restart]).len(), 1, "a second start");
}

#[test]
fn an_intact_chain_verifies() {
    let links = chain(&[event("a"), event("b"), event("c")]);
    let head = links[2].hash.clone().unwrap_or_default();
    assert_eq!(verify(&links, 3, &head).problems, Vec::<String>::new());
}

#[test]
fn an_edit_a_removal_and_a_cut_end_are_each_found() {
    let links = chain(&[event("a"), event("b"), event("c")]);
    let head = links[2].hash.clone().unwrap_or_default();

    let mut edited = links.clone();
    edited[1].event.detail = Some("forged".into());
    assert_eq!(verify(&edited, 3, &head).problems.len(), 1);

    let removed = vec![links[0].clone(), links[2].clone()];
    assert!(!verify(&removed, 3, &head).problems.is_empty());

    let cut = links[..2].to_vec();
    assert!(!verify(&cut, 3, &head).problems.is_empty());
}
