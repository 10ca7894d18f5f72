//! The process's open-files limit (`RLIMIT_NOFILE`) and the connection cap it allows. Every
//! connection is a file descriptor; so are the database's files and every outgoing call. A PS
//! left at a shell's soft limit (often 1,024) ran out at about a thousand idle sockets and then
//! could neither accept nor call out (issue 9), so the soft limit is raised to the hard one and
//! connections are capped below it, leaving room for the rest.

/// Raises the soft `RLIMIT_NOFILE` to the hard limit and returns the soft limit then in force.
/// Idempotent: each listener's `serve` calls it.
pub(crate) fn raise_open_files_limit() -> std::io::Result<u64> {
    rlimit::increase_nofile_limit(u64::MAX)
}

/// The connection cap of one of `listeners` listeners: `connections_max`, lowered so that
/// `open_files_reserved` descriptors stay free below the soft limit, the room left shared
/// equally among the listeners (all at their caps together still leave the reserve). When the
/// limit leaves no such room, half of it goes to connections, so that the PS still serves and
/// says why in its log.
pub(crate) fn connection_cap(
    connections_max: usize,
    soft_limit: u64,
    open_files_reserved: usize,
    listeners: usize,
) -> usize {
    let soft = usize::try_from(soft_limit).unwrap_or(usize::MAX);
    let room = soft.saturating_sub(open_files_reserved);
    let room = if room == 0 { (soft / 2).max(1) } else { room };
    connections_max.min((room / listeners.max(1)).max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_leaves_room_below_the_file_limit() {
        assert_eq!(connection_cap(4_096, 1_048_576, 1_024, 1), 4_096);
        assert_eq!(connection_cap(4_096, 4_096, 1_024, 1), 3_072);
        assert_eq!(connection_cap(4_096, 1_024, 1_024, 1), 512);
        assert_eq!(connection_cap(4_096, 1, 1_024, 1), 1);
        assert_eq!(connection_cap(8, u64::MAX, 1_024, 1), 8);
        // Three listeners share what the reserve leaves.
        assert_eq!(connection_cap(4_096, 4_096, 1_024, 3), 1_024);
        assert_eq!(connection_cap(4_096, 1_048_576, 1_024, 3), 4_096);
        assert_eq!(connection_cap(4_096, 1, 1_024, 3), 1);
    }
}
