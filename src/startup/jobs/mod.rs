//! The background jobs of a running server, each in its own file. Each is a task spawned at start
//! and aborted when the server stops; a failed round is logged and the next one tries again.

mod head_signing;
mod key_reload;
mod mail_sender;
mod purge;
mod reseal;

pub(super) use head_signing::spawn_head_signing;
pub(super) use key_reload::spawn_key_reload;
pub(super) use mail_sender::spawn_mail_sender;
pub(super) use purge::spawn_purge;
pub(super) use reseal::spawn_reseal;
