//! The kernel layers around each workflow interpreter, built once in the parent and applied in
//! the child between fork and exec (`pre_exec`), in the order verified in notes/sandbox.md:
//! namespaces (optional) → parent-death signal → rlimits → Landlock → seccomp (last, so the
//! earlier steps may still use the syscalls it denies).
//!
//! `pre_exec` runs in the forked child of a multithreaded process: it must not allocate or take
//! locks. Everything (BPF programs, the Landlock ruleset fd, rlimit values) is prepared here in
//! the parent; the closure only makes raw syscalls.

use std::collections::BTreeMap;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use landlock::{
    ABI, Access, AccessFs, AccessNet, BitFlags, PathBeneath, PathFd, Ruleset, RulesetAttr,
    RulesetCreatedAttr, Scope,
};
use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule, TargetArch,
};

use super::interpreter::Interpreter;

/// Resource caps of one child.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub address_space_bytes: u64,
    pub cpu_seconds: u64,
    pub open_files: u64,
}

/// Everything `pre_exec` needs, prepared in the parent.
pub(crate) struct Layers {
    /// Installed by the shim itself right after exec (see `no_exec_program_hex`).
    no_exec: BpfProgram,
    seccomp_deny: BpfProgram,
    seccomp_clone3: BpfProgram,
    landlock_ruleset: OwnedFd,
    pub namespaces: bool,
    limits: Limits,
    parent_pid: libc::pid_t,
}

/// Flags for the optional namespace layer.
const NAMESPACE_FLAGS: libc::c_int = libc::CLONE_NEWUSER
    | libc::CLONE_NEWNET
    | libc::CLONE_NEWIPC
    | libc::CLONE_NEWUTS
    | libc::CLONE_NEWNS;

/// Landlock ABI of the running kernel (0 when Landlock is absent or disabled).
pub(crate) fn landlock_abi() -> i32 {
    const LANDLOCK_CREATE_RULESET_VERSION: libc::c_uint = 1;
    // SAFETY: the documented version query; no pointer is dereferenced.
    let abi = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<libc::c_void>(),
            0usize,
            LANDLOCK_CREATE_RULESET_VERSION,
        )
    };
    if abi < 0 { 0 } else { abi as i32 }
}

impl Layers {
    /// Builds the seccomp programs and the Landlock ruleset. `namespaces` says whether the
    /// optional namespace layer was found to work on this host.
    pub fn build(interp: &Interpreter, limits: Limits, namespaces: bool) -> Result<Self, String> {
        let abi_version = landlock_abi();
        if abi_version < 1 {
            return Err(
                "Landlock is not available in this kernel (needs Linux 5.13+ with \
                        landlock in the LSM list)"
                    .into(),
            );
        }
        let landlock_ruleset = build_landlock(interp, abi_version)?;
        let (seccomp_deny, seccomp_clone3) = build_seccomp()?;
        Ok(Layers {
            no_exec: build_no_exec()?,
            seccomp_deny,
            seccomp_clone3,
            landlock_ruleset,
            namespaces,
            limits,
            // SAFETY: getpid has no preconditions.
            parent_pid: unsafe { libc::getpid() },
        })
    }

    /// The "no more execve" filter, as hex of `struct sock_filter[]` (native endianness), for the
    /// shim to install with prctl right after start-up. seccomp cannot express "only the first
    /// execve" and our own exec of the interpreter happens after `pre_exec`; Landlock limits
    /// exec to the interpreter, and this filter then closes exec completely.
    pub fn no_exec_program_hex(&self) -> String {
        let mut bytes = Vec::with_capacity(self.no_exec.len() * 8);
        for insn in &self.no_exec {
            bytes.extend_from_slice(&insn.code.to_ne_bytes());
            bytes.push(insn.jt);
            bytes.push(insn.jf);
            bytes.extend_from_slice(&insn.k.to_ne_bytes());
        }
        hex::encode(bytes)
    }

    /// Applies every layer to the calling (forked, not yet exec'd) process.
    ///
    /// # Safety
    /// Only for `pre_exec`: makes raw syscalls on data prepared by `build`, allocates nothing.
    pub unsafe fn apply_in_child(&self) -> io::Result<()> {
        unsafe {
            if self.namespaces && libc::unshare(NAMESPACE_FLAGS) != 0 {
                return Err(io::Error::last_os_error());
            }
            if libc::prctl(
                libc::PR_SET_PDEATHSIG,
                libc::SIGKILL as libc::c_ulong,
                0,
                0,
                0,
            ) != 0
            {
                return Err(io::Error::last_os_error());
            }
            // The parent may have died between fork and PDEATHSIG: then nobody would kill us.
            if libc::getppid() != self.parent_pid {
                libc::_exit(1);
            }
            apply_limits(&self.limits)?;
            if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1 as libc::c_ulong, 0, 0, 0) != 0 {
                return Err(io::Error::last_os_error());
            }
            if libc::syscall(
                libc::SYS_landlock_restrict_self,
                self.landlock_ruleset.as_raw_fd(),
                0 as libc::c_uint,
            ) != 0
            {
                return Err(io::Error::last_os_error());
            }
            install_seccomp(&self.seccomp_clone3)?;
            install_seccomp(&self.seccomp_deny)?;
        }
        Ok(())
    }
}

/// Only unshare(): used once at start-up to learn whether the host allows namespaces.
///
/// # Safety
/// Only for `pre_exec`.
pub(crate) unsafe fn namespaces_only_in_child() -> io::Result<()> {
    if unsafe { libc::unshare(NAMESPACE_FLAGS) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

unsafe fn apply_limits(limits: &Limits) -> io::Result<()> {
    let set = |resource, soft: u64, hard: u64| -> io::Result<()> {
        let mut current = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: plain syscalls on a stack value.
        unsafe {
            if libc::getrlimit(resource, &mut current) != 0 {
                return Err(io::Error::last_os_error());
            }
            // Never raise: stay under whatever hard limit the server itself runs with.
            let hard = hard.min(current.rlim_max);
            let limit = libc::rlimit {
                rlim_cur: soft.min(hard),
                rlim_max: hard,
            };
            if libc::setrlimit(resource, &limit) != 0 {
                return Err(io::Error::last_os_error());
            }
        }
        Ok(())
    };
    set(
        libc::RLIMIT_AS,
        limits.address_space_bytes,
        limits.address_space_bytes,
    )?;
    // SIGXCPU at the soft limit, SIGKILL one second later.
    set(libc::RLIMIT_CPU, limits.cpu_seconds, limits.cpu_seconds + 1)?;
    set(libc::RLIMIT_FSIZE, 0, 0)?;
    set(libc::RLIMIT_NOFILE, limits.open_files, limits.open_files)?;
    set(libc::RLIMIT_CORE, 0, 0)?;
    Ok(())
}

unsafe fn install_seccomp(program: &BpfProgram) -> io::Result<()> {
    let prog = libc::sock_fprog {
        len: program.len() as libc::c_ushort,
        filter: program.as_ptr() as *mut libc::sock_filter,
    };
    // SAFETY: `prog` points at a live, validated BPF program; no_new_privs is already set.
    if unsafe {
        libc::prctl(
            libc::PR_SET_SECCOMP,
            libc::SECCOMP_MODE_FILTER,
            &prog as *const _,
        )
    } != 0
    {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Read-only access to the interpreter's files, execute only on the interpreter and the dynamic
/// loader, no writes anywhere; TCP bind/connect and signals/abstract sockets outside the
/// sandbox denied where the ABI has them.
fn build_landlock(interp: &Interpreter, abi_version: i32) -> Result<OwnedFd, String> {
    let abi = match abi_version {
        1 => ABI::V1,
        2 => ABI::V2,
        3 => ABI::V3,
        4 => ABI::V4,
        5 => ABI::V5,
        6 => ABI::V6,
        _ => ABI::V7,
    };
    let err = |e: landlock::RulesetError| format!("Landlock ruleset: {e}");
    let mut ruleset = Ruleset::default()
        .handle_access(AccessFs::from_all(abi))
        .map_err(err)?;
    if abi_version >= 4 {
        ruleset = ruleset
            .handle_access(AccessNet::from_all(abi))
            .map_err(err)?;
    }
    if abi_version >= 6 {
        ruleset = ruleset.scope(Scope::from_all(abi)).map_err(err)?;
    }
    let mut created = ruleset.create().map_err(err)?;
    let read: BitFlags<AccessFs> = AccessFs::ReadFile | AccessFs::ReadDir;
    for dir in interp.read_paths() {
        let fd = PathFd::new(&dir).map_err(|e| format!("Landlock path {}: {e}", dir.display()))?;
        created = created.add_rule(PathBeneath::new(fd, read)).map_err(err)?;
    }
    for file in interp.exec_paths() {
        let fd =
            PathFd::new(&file).map_err(|e| format!("Landlock path {}: {e}", file.display()))?;
        created = created
            .add_rule(PathBeneath::new(fd, AccessFs::Execute | AccessFs::ReadFile))
            .map_err(err)?;
    }
    let fd: Option<OwnedFd> = created.into();
    fd.ok_or_else(|| "Landlock ruleset could not be created".to_string())
}

/// The two seccomp filters (seccompiler allows one match action per filter): an EPERM denylist
/// and clone3 → ENOSYS (glibc then falls back to clone, whose flags the denylist can inspect).
fn build_seccomp() -> Result<(BpfProgram, BpfProgram), String> {
    let arch = TargetArch::try_from(std::env::consts::ARCH)
        .map_err(|e| format!("seccomp: unsupported architecture: {e}"))?;
    let err = |e: seccompiler::BackendError| format!("seccomp filter: {e}");
    let cond = |arg, op, value| {
        SeccompCondition::new(arg, SeccompCmpArgLen::Qword, op, value).map_err(err)
    };
    let always = Vec::new;
    let mut deny: BTreeMap<i64, Vec<SeccompRule>> = BTreeMap::new();
    for syscall in [
        libc::SYS_socket,
        libc::SYS_ptrace,
        libc::SYS_process_vm_readv,
        libc::SYS_process_vm_writev,
        libc::SYS_mount,
        libc::SYS_umount2,
        libc::SYS_pivot_root,
        libc::SYS_chroot,
        libc::SYS_unshare,
        libc::SYS_setns,
        libc::SYS_bpf,
        libc::SYS_io_uring_setup,
        libc::SYS_io_uring_enter,
        libc::SYS_io_uring_register,
        libc::SYS_keyctl,
        libc::SYS_add_key,
        libc::SYS_request_key,
        libc::SYS_perf_event_open,
        libc::SYS_userfaultfd,
        libc::SYS_kexec_load,
        libc::SYS_init_module,
        libc::SYS_finit_module,
        libc::SYS_delete_module,
        libc::SYS_open_by_handle_at,
        libc::SYS_name_to_handle_at,
        libc::SYS_reboot,
        libc::SYS_swapon,
        libc::SYS_swapoff,
        libc::SYS_acct,
        libc::SYS_quotactl,
        libc::SYS_syslog,
        libc::SYS_fanotify_init,
        // memfd + execveat would run a file Landlock cannot see: no execveat, no memfd.
        libc::SYS_execveat,
        libc::SYS_memfd_create,
        // Leaving the process group or session would dodge kill(-pgid).
        libc::SYS_setsid,
        libc::SYS_setpgid,
        // Signals: only to ourselves through tgkill (CPython's raise()); see below.
        libc::SYS_kill,
        libc::SYS_tkill,
        libc::SYS_rt_sigqueueinfo,
        libc::SYS_pidfd_open,
        libc::SYS_pidfd_send_signal,
        libc::SYS_pidfd_getfd,
        libc::SYS_process_madvise,
        libc::SYS_kcmp,
        // Metadata changes Landlock does not cover. The child keeps the server's uid (even in
        // a user namespace), so it owns root-owned files as far as these checks go.
        libc::SYS_fchmod,
        libc::SYS_fchmodat,
        libc::SYS_fchmodat2,
        libc::SYS_fchown,
        libc::SYS_fchownat,
        libc::SYS_utimensat,
        libc::SYS_setxattr,
        libc::SYS_lsetxattr,
        libc::SYS_fsetxattr,
        libc::SYS_removexattr,
        libc::SYS_lremovexattr,
        libc::SYS_fremovexattr,
        // What a root child without a user namespace could otherwise do to the host: raise its
        // own limits, renice or re-pin other processes, set the clock or the hostname, move
        // other processes' memory, use the new mount API.
        libc::SYS_setrlimit,
        libc::SYS_setpriority,
        libc::SYS_sched_setscheduler,
        libc::SYS_sched_setparam,
        libc::SYS_sched_setaffinity,
        libc::SYS_ioprio_set,
        libc::SYS_settimeofday,
        libc::SYS_clock_settime,
        libc::SYS_clock_adjtime,
        libc::SYS_adjtimex,
        libc::SYS_sethostname,
        libc::SYS_setdomainname,
        libc::SYS_migrate_pages,
        libc::SYS_move_pages,
        libc::SYS_open_tree,
        libc::SYS_move_mount,
        libc::SYS_fsopen,
        libc::SYS_fsmount,
        libc::SYS_fspick,
        libc::SYS_mount_setattr,
        libc::SYS_kexec_file_load,
        libc::SYS_process_mrelease,
        libc::SYS_vhangup,
    ] {
        deny.insert(syscall, always());
    }
    #[cfg(target_arch = "x86_64")]
    for syscall in [
        libc::SYS_fork,
        libc::SYS_vfork,
        libc::SYS_chmod,
        libc::SYS_chown,
        libc::SYS_lchown,
        libc::SYS_utime,
        libc::SYS_utimes,
        libc::SYS_futimesat,
        libc::SYS_iopl,
        libc::SYS_ioperm,
    ] {
        deny.insert(syscall, always());
    }
    // prlimit64 reads limits too (glibc's getrlimit): refuse it only with a new limit.
    deny.insert(
        libc::SYS_prlimit64,
        vec![SeccompRule::new(vec![cond(2, SeccompCmpOp::Ne, 0)?]).map_err(err)?],
    );
    // clone: only threads.
    deny.insert(
        libc::SYS_clone,
        vec![
            SeccompRule::new(vec![cond(
                0,
                SeccompCmpOp::MaskedEq(libc::CLONE_THREAD as u64),
                0,
            )?])
            .map_err(err)?,
        ],
    );
    // socketpair: AF_UNIX only (asyncio's self-pipe needs it).
    deny.insert(
        libc::SYS_socketpair,
        vec![
            SeccompRule::new(vec![cond(0, SeccompCmpOp::Ne, libc::AF_UNIX as u64)?])
                .map_err(err)?,
        ],
    );
    // tgkill towards the parent (Landlock's signal scope covers every other process on ABI 6+).
    // SAFETY: getpid has no preconditions.
    let parent = unsafe { libc::getpid() } as u64;
    deny.insert(
        libc::SYS_tgkill,
        vec![SeccompRule::new(vec![cond(0, SeccompCmpOp::Eq, parent)?]).map_err(err)?],
    );
    // Keep the parent-death signal.
    deny.insert(
        libc::SYS_prctl,
        vec![
            SeccompRule::new(vec![cond(
                0,
                SeccompCmpOp::Eq,
                libc::PR_SET_PDEATHSIG as u64,
            )?])
            .map_err(err)?,
        ],
    );
    let deny_filter = SeccompFilter::new(
        deny,
        SeccompAction::Allow,
        SeccompAction::Errno(libc::EPERM as u32),
        arch,
    )
    .map_err(err)?;
    let mut clone3 = BTreeMap::new();
    clone3.insert(libc::SYS_clone3, always());
    let clone3_filter = SeccompFilter::new(
        clone3,
        SeccompAction::Allow,
        SeccompAction::Errno(libc::ENOSYS as u32),
        arch,
    )
    .map_err(err)?;
    Ok((
        BpfProgram::try_from(deny_filter).map_err(err)?,
        BpfProgram::try_from(clone3_filter).map_err(err)?,
    ))
}

/// execve/execveat → EPERM, installed by the shim after the interpreter started.
fn build_no_exec() -> Result<BpfProgram, String> {
    let arch = TargetArch::try_from(std::env::consts::ARCH)
        .map_err(|e| format!("seccomp: unsupported architecture: {e}"))?;
    let err = |e: seccompiler::BackendError| format!("seccomp filter: {e}");
    let mut rules = BTreeMap::new();
    rules.insert(libc::SYS_execve, Vec::new());
    rules.insert(libc::SYS_execveat, Vec::new());
    let filter = SeccompFilter::new(
        rules,
        SeccompAction::Allow,
        SeccompAction::Errno(libc::EPERM as u32),
        arch,
    )
    .map_err(err)?;
    BpfProgram::try_from(filter).map_err(err)
}

/// Existing paths among `candidates`, canonicalised (Landlock rules bind inodes).
pub(crate) fn existing(candidates: impl IntoIterator<Item = PathBuf>) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = Vec::new();
    for path in candidates {
        if let Ok(real) = Path::new(&path).canonicalize()
            && !out.contains(&real)
        {
            out.push(real);
        }
    }
    out
}
