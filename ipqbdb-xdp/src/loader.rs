//! Loading, attaching, adopting and detaching the XDP program. Everything lives in a pin directory
//! on a BPF filesystem: the four maps (pinned by name) and the BPF link that attaches the program to
//! the interface. While the link's pin exists the program stays attached, whether or not ibd-xdp
//! runs; a restarted ibd-xdp finds the pin and adopts program and maps as they are (no reload, so no
//! moment without verdicts). Removing the pins detaches the program and frees the maps.

use std::path::{Path, PathBuf};

use aya::maps::{Array, HashMap, LpmTrie, Map, MapData, PerCpuHashMap};
use aya::programs::links::FdLink;
use aya::programs::{ProgramError, Xdp, XdpFlags};
use aya::EbpfLoader;

use crate::error::{chain, XdpError};
use crate::maps::{self, Conf, Counts, Entry, Key};

/// The compiled program (see build.rs).
/// Aligned: the ELF parser reads it in place.
static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/verdict.bpf.o"));

const BPF_FS_MAGIC: i64 = 0xcafe_4a11;

/// How the program came to be attached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// In the driver (`XDP_FLAGS_DRV_MODE`).
    Native,
    /// In the generic network stack (`XDP_FLAGS_SKB_MODE`), for drivers without XDP support.
    Generic,
    /// Found attached by an earlier ibd-xdp and kept.
    Adopted,
}

impl std::fmt::Display for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Mode::Native => "native mode",
            Mode::Generic => "generic mode",
            Mode::Adopted => "adopted, as attached before",
        })
    }
}

/// The sizes the maps are created with (an adopted map keeps its own) and the attach mode.
#[derive(Debug, Clone, Copy)]
pub struct Sizes {
    pub max_entries: u32,
    pub max_white: u32,
    pub mode: AttachMode,
}

/// Which XDP mode to ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum AttachMode {
    /// Native where the driver supports it, else generic.
    #[default]
    Auto,
    /// In the driver only (fails where the driver has no XDP).
    Native,
    /// In the generic network stack, after the driver built the socket buffer.
    Generic,
}

/// The maps, open in this process.
pub struct Maps {
    pub block: HashMap<MapData, Key, Entry>,
    pub counts: PerCpuHashMap<MapData, Key, Counts>,
    pub white: LpmTrie<MapData, [u8; 16], u32>,
    pub conf: Array<MapData, Conf>,
}

/// The program attached to an interface, with its pins.
pub struct Attached {
    pub maps: Maps,
    pub mode: Mode,
    pub pin_dir: PathBuf,
}

fn map_err(map: &'static str) -> impl Fn(aya::maps::MapError) -> XdpError {
    move |e| XdpError::Map {
        map,
        reason: chain(&e),
    }
}

fn check_bpffs(dir: &Path) -> Result<(), XdpError> {
    let c = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes())
        .map_err(|_| XdpError::NotBpffs(dir.to_path_buf()))?;
    // SAFETY: statfs fills a struct we own from a NUL-terminated path.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statfs(c.as_ptr(), &mut st) } != 0 {
        return Err(XdpError::Pin {
            path: dir.to_path_buf(),
            source: std::io::Error::last_os_error(),
        });
    }
    if st.f_type as i64 != BPF_FS_MAGIC {
        return Err(XdpError::NotBpffs(dir.to_path_buf()));
    }
    Ok(())
}

fn open_pinned(dir: &Path) -> Result<Maps, XdpError> {
    let data = |name: &'static str| {
        MapData::from_pin(dir.join(name)).map_err(|e| XdpError::Map {
            map: name,
            reason: chain(&e),
        })
    };
    Ok(Maps {
        block: HashMap::try_from(Map::HashMap(data(maps::BLOCK)?)).map_err(map_err(maps::BLOCK))?,
        counts: PerCpuHashMap::try_from(Map::PerCpuHashMap(data(maps::COUNTS)?))
            .map_err(map_err(maps::COUNTS))?,
        white: LpmTrie::try_from(Map::LpmTrie(data(maps::WHITE)?)).map_err(map_err(maps::WHITE))?,
        conf: Array::try_from(Map::Array(data(maps::CONF)?)).map_err(map_err(maps::CONF))?,
    })
}

/// Loads `program` of the BPF object `object` into the kernel without attaching it: what the
/// verifier thinks of it. Maps the object pins by name go to aya's default, /sys/fs/bpf; ibd-xdp
/// itself loads through [`attach_or_adopt`], which pins in its own directory.
pub fn load_object(object: &[u8], program: &str) -> Result<aya::Ebpf, XdpError> {
    let mut ebpf = EbpfLoader::new()
        .load(object)
        .map_err(|e| XdpError::Load(chain(&e)))?;
    let prog: &mut Xdp = ebpf
        .program_mut(program)
        .ok_or_else(|| XdpError::Load(format!("no program {program} in the object")))?
        .try_into()
        .map_err(|e: ProgramError| XdpError::Load(chain(&e)))?;
    load_program(prog, program)?;
    Ok(ebpf)
}

/// Loads an XDP program; the verifier's refusal becomes one line with the program's name and the
/// verifier's reason: the log's last line that says what is wrong, not its closing statistics.
fn load_program(prog: &mut Xdp, name: &str) -> Result<(), XdpError> {
    prog.load().map_err(|e| match e {
        ProgramError::LoadError {
            io_error,
            verifier_log,
        } => XdpError::Verifier {
            program: name.into(),
            reason: format!(
                "{io_error}: {}",
                verifier_reason(&verifier_log.to_string()).unwrap_or("(no verifier log)")
            ),
        },
        e => XdpError::Load(chain(&e)),
    })
}

/// The line of a verifier log that gives the reason: the last one before the closing statistics
/// ("processed N insns ...", "verification time ...", "stack depth ...").
fn verifier_reason(log: &str) -> Option<&str> {
    log.lines().map(str::trim).rfind(|l| {
        !l.is_empty()
            && !l.starts_with("processed ")
            && !l.starts_with("verification time")
            && !l.starts_with("stack depth")
    })
}

/// Attaches the program to `iface`, or adopts the one an earlier run left attached under `pin_dir`
/// (a directory on a BPF filesystem, made if missing).
pub fn attach_or_adopt(iface: &str, pin_dir: &Path, sizes: Sizes) -> Result<Attached, XdpError> {
    // The nearest existing directory must already be on a BPF filesystem: nothing is made elsewhere.
    let existing = pin_dir
        .ancestors()
        .find(|a| a.exists())
        .unwrap_or(Path::new("/"));
    check_bpffs(existing)?;
    std::fs::create_dir_all(pin_dir).map_err(|source| XdpError::Pin {
        path: pin_dir.to_path_buf(),
        source,
    })?;
    check_bpffs(pin_dir)?;
    let link_pin = pin_dir.join(maps::LINK);
    if link_pin.exists() {
        let wanted = if_index(iface)?;
        let linked = link_ifindex(&link_pin).map_err(|source| XdpError::Pin {
            path: link_pin.clone(),
            source,
        })?;
        if linked == wanted {
            return Ok(Attached {
                maps: open_pinned(pin_dir)?,
                mode: Mode::Adopted,
                pin_dir: pin_dir.to_path_buf(),
            });
        }
        // The interface the link was made for is gone (0) or is another one now: the pins are
        // stale, and adopting them would judge nothing.
    }
    // No live link: maps left without a program are from a detached run; start afresh.
    remove_pins(pin_dir)?;
    let mut ebpf = EbpfLoader::new()
        .map_pin_path(pin_dir)
        .set_max_entries(maps::BLOCK, sizes.max_entries)
        .set_max_entries(maps::COUNTS, sizes.max_entries)
        .set_max_entries(maps::WHITE, sizes.max_white)
        .load(OBJECT)
        .map_err(|e| XdpError::Load(chain(&e)))?;
    let prog: &mut Xdp = ebpf
        .program_mut(maps::PROGRAM)
        .ok_or_else(|| XdpError::Load(format!("no program {} in the object", maps::PROGRAM)))?
        .try_into()
        .map_err(|e: ProgramError| XdpError::Load(chain(&e)))?;
    load_program(prog, maps::PROGRAM)?;
    let attach_err = |e: ProgramError| XdpError::Attach {
        iface: iface.into(),
        reason: chain(&e),
    };
    let (id, mode) = match sizes.mode {
        AttachMode::Generic => (
            prog.attach(iface, XdpFlags::SKB_MODE).map_err(attach_err)?,
            Mode::Generic,
        ),
        AttachMode::Native => (
            prog.attach(iface, XdpFlags::DRV_MODE).map_err(attach_err)?,
            Mode::Native,
        ),
        AttachMode::Auto => match prog.attach(iface, XdpFlags::DRV_MODE) {
            Ok(id) => (id, Mode::Native),
            Err(ProgramError::UnknownInterface { .. }) => {
                return Err(XdpError::Attach {
                    iface: iface.into(),
                    reason: "no such interface".into(),
                })
            }
            Err(_) => (
                prog.attach(iface, XdpFlags::SKB_MODE).map_err(attach_err)?,
                Mode::Generic,
            ),
        },
    };
    let link = prog.take_link(id).map_err(attach_err)?;
    let fd_link = FdLink::try_from(link).map_err(|e| XdpError::Attach {
        iface: iface.into(),
        reason: format!("{} (kernels before 5.9 have no XDP links)", chain(&e)),
    })?;
    fd_link
        .pin(pin_dir.join(maps::LINK))
        .map_err(|e| XdpError::Attach {
            iface: iface.into(),
            reason: format!("pinning the link: {}", chain(&e)),
        })?;
    Ok(Attached {
        maps: open_pinned(pin_dir)?,
        mode,
        pin_dir: pin_dir.to_path_buf(),
    })
}

fn if_index(iface: &str) -> Result<u32, XdpError> {
    let no_such = || XdpError::Attach {
        iface: iface.into(),
        reason: "no such interface".into(),
    };
    let c = std::ffi::CString::new(iface).map_err(|_| no_such())?;
    // SAFETY: a NUL-terminated name; 0 means no such interface.
    match unsafe { libc::if_nametoindex(c.as_ptr()) } {
        0 => Err(no_such()),
        i => Ok(i),
    }
}

/// The interface index of the XDP link pinned at `path` (0 once its interface is gone). aya keeps
/// its link-info call private, so this is the two `bpf(2)` commands it would make.
fn link_ifindex(path: &Path) -> std::io::Result<u32> {
    const BPF_OBJ_GET: libc::c_long = 7;
    const BPF_OBJ_GET_INFO_BY_FD: libc::c_long = 15;
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes())
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidInput))?;
    // union bpf_attr, zeroed beyond the fields each command reads.
    let mut attr = [0u64; 16];
    attr[0] = c.as_ptr() as u64; // pathname
                                 // SAFETY: bpf(2) reads `attr` (pathname valid for the call) and returns a new descriptor.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_OBJ_GET,
            attr.as_ptr(),
            std::mem::size_of_val(&attr),
        )
    };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: the kernel just gave us this descriptor; OwnedFd closes it.
    let fd = unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd as i32) };
    #[repr(C, align(8))]
    struct InfoAttr {
        bpf_fd: u32,
        info_len: u32,
        info: u64,
        rest: [u64; 14],
    }
    /// `struct bpf_link_info`'s head: the union starts 8-aligned, `xdp.ifindex` first in it.
    #[repr(C, align(8))]
    struct LinkInfo {
        kind: u32,
        id: u32,
        prog_id: u32,
        pad: u32,
        xdp_ifindex: u32,
        rest: [u32; 27],
    }
    const BPF_LINK_TYPE_XDP: u32 = 6;
    let mut info = LinkInfo {
        kind: 0,
        id: 0,
        prog_id: 0,
        pad: 0,
        xdp_ifindex: 0,
        rest: [0; 27],
    };
    let attr = InfoAttr {
        bpf_fd: std::os::fd::AsRawFd::as_raw_fd(&fd) as u32,
        info_len: std::mem::size_of::<LinkInfo>() as u32,
        info: std::ptr::addr_of_mut!(info) as u64,
        rest: [0; 14],
    };
    // SAFETY: bpf(2) writes at most info_len bytes into `info`, which outlives the call.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_OBJ_GET_INFO_BY_FD,
            std::ptr::addr_of!(attr),
            std::mem::size_of::<InfoAttr>(),
        )
    };
    if rc < 0 {
        return Err(std::io::Error::last_os_error());
    }
    if info.kind != BPF_LINK_TYPE_XDP {
        return Err(std::io::Error::other("not an XDP link"));
    }
    Ok(info.xdp_ifindex)
}

/// Detaches the program and frees its maps: removing the pins drops the kernel's last references
/// (this process's map descriptors aside, which go when it exits).
pub fn remove_pins(pin_dir: &Path) -> Result<(), XdpError> {
    for name in std::iter::once(maps::LINK).chain(maps::ALL) {
        let path = pin_dir.join(name);
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => return Err(XdpError::Pin { path, source }),
        }
    }
    Ok(())
}

/// [`remove_pins`], then the directory itself.
pub fn detach(pin_dir: &Path) -> Result<(), XdpError> {
    remove_pins(pin_dir)?;
    match std::fs::remove_dir(pin_dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(XdpError::Pin {
            path: pin_dir.to_path_buf(),
            source,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::verifier_reason;

    #[test]
    fn the_reason_is_the_last_line_before_the_statistics() {
        let log = "0: R1=ctx() R10=fp0\n; return data[0] ? XDP_DROP : XDP_PASS;\n\
                   2: (71) r1 = *(u8 *)(r1 +0)\ninvalid access to packet, off=0 size=1, R1(id=0,off=0,r=0)\n\
                   R1 offset is outside of the packet\n\
                   processed 3 insns (limit 1000000) max_states_per_insn 0 total_states 0\n\n";
        assert_eq!(
            verifier_reason(log),
            Some("R1 offset is outside of the packet")
        );
        assert_eq!(verifier_reason("\nprocessed 1 insns\n"), None);
    }
}
