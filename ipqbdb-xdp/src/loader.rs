//! Loading, attaching, adopting and detaching the XDP program. Everything lives in a pin directory
//! on a BPF filesystem: the four maps (pinned by name) and the BPF link that attaches the program to
//! the interface. While the link's pin exists the program stays attached, whether or not ibd-xdp
//! runs; a restarted ibd-xdp finds the pin and adopts program and maps as they are (no reload, so no
//! moment without verdicts). Removing the pins detaches the program and frees the maps.
//!
//! **Adopted maps of other sizes are replaced, not kept.** A map's `max_entries` is fixed when the
//! kernel creates it, so a restart with other `--max-entries` / `--max-white` loads a new program
//! with maps of the asked sizes in a staging directory, fills them from the database, and only then
//! swaps the program of the pinned link for the new one (`BPF_LINK_UPDATE`, atomic) and renames the
//! new maps' pins over the old. Verdicts come from the old maps until that instant and from the full
//! new ones after it: no gap. Sizing the run from the adopted maps instead would be simpler but would
//! ignore the operator's sizes until a detach, and a detach is a gap.

use std::path::{Path, PathBuf};

use aya::maps::{Array, HashMap, LpmTrie, Map, MapData, PerCpuHashMap};
use aya::programs::links::{FdLink, PinnedLink};
use aya::programs::xdp::XdpLink;
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
pub enum AttachedAs {
    /// In the driver (`XDP_FLAGS_DRV_MODE`).
    Native,
    /// In the generic network stack (`XDP_FLAGS_SKB_MODE`), for drivers without XDP support.
    Generic,
    /// Found attached by an earlier ibd-xdp and kept.
    Adopted,
    /// Found attached by an earlier ibd-xdp with maps of other sizes: the link kept, program and
    /// maps replaced by new ones of the asked sizes.
    Resized,
}

impl std::fmt::Display for AttachedAs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            AttachedAs::Native => "native mode",
            AttachedAs::Generic => "generic mode",
            AttachedAs::Adopted => "adopted, as attached before",
            AttachedAs::Resized => "adopted, maps resized to the sizes asked",
        })
    }
}

/// The sizes the maps are created with (adopted maps of other sizes are replaced) and the attach
/// mode.
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
    pub mode: AttachedAs,
    pub pin_dir: PathBuf,
    /// The maps a resize replaced: their drop counts of the last moments before the swap still
    /// go to the database (see `Daemon`), then they are freed.
    pub retired: Option<Maps>,
}

/// Where a resize stages the new maps, inside the pin directory (same BPF filesystem, so a rename
/// moves a pin into place).
const STAGING: &str = "next";

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
    load_program(program_named(&mut ebpf, program)?, program)?;
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
/// (a directory on a BPF filesystem, made if missing). `fill` gets the maps before the kernel
/// judges from them (new ones empty, adopted ones as they are), so the first verdicts of a new
/// program already have the database; its result is returned beside the attachment.
pub fn attach_or_adopt<T>(
    iface: &str,
    pin_dir: &Path,
    sizes: Sizes,
    fill: impl FnOnce(&mut Maps) -> Result<T, XdpError>,
) -> Result<(Attached, T), XdpError> {
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
            let mut maps = open_pinned(pin_dir)?;
            if pinned_sizes(pin_dir)? != sizes.of_maps() {
                return resize(pin_dir, &link_pin, sizes, maps, fill);
            }
            let filled = fill(&mut maps)?;
            let attached = Attached {
                maps,
                mode: AttachedAs::Adopted,
                pin_dir: pin_dir.to_path_buf(),
                retired: None,
            };
            return Ok((attached, filled));
        }
        // The interface the link was made for is gone (0) or is another one now: the pins are
        // stale, and adopting them would judge nothing.
    }
    // No live link: maps left without a program are from a detached run; start afresh.
    remove_pins(pin_dir)?;
    let mut ebpf = load_pinned(pin_dir, sizes)?;
    let mut new_maps = open_pinned(pin_dir)?;
    let filled = fill(&mut new_maps)?;
    let prog = program(&mut ebpf)?;
    let attach_err = |e: ProgramError| XdpError::Attach {
        iface: iface.into(),
        reason: chain(&e),
    };
    let (id, mode) = match sizes.mode {
        AttachMode::Generic => (
            prog.attach(iface, XdpFlags::SKB_MODE).map_err(attach_err)?,
            AttachedAs::Generic,
        ),
        AttachMode::Native => (
            prog.attach(iface, XdpFlags::DRV_MODE).map_err(attach_err)?,
            AttachedAs::Native,
        ),
        AttachMode::Auto => match prog.attach(iface, XdpFlags::DRV_MODE) {
            Ok(id) => (id, AttachedAs::Native),
            Err(ProgramError::UnknownInterface { .. }) => {
                return Err(XdpError::Attach {
                    iface: iface.into(),
                    reason: "no such interface".into(),
                })
            }
            Err(_) => (
                prog.attach(iface, XdpFlags::SKB_MODE).map_err(attach_err)?,
                AttachedAs::Generic,
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
    let attached = Attached {
        maps: new_maps,
        mode,
        pin_dir: pin_dir.to_path_buf(),
        retired: None,
    };
    Ok((attached, filled))
}

impl Sizes {
    /// `max_entries` of the block, counts and whitelist maps as these sizes make them.
    fn of_maps(&self) -> [u32; 3] {
        [self.max_entries, self.max_entries, self.max_white]
    }
}

/// `max_entries` of the maps pinned in `dir`, in [`Sizes::of_maps`]'s order.
fn pinned_sizes(dir: &Path) -> Result<[u32; 3], XdpError> {
    let size = |map: &'static str| {
        MapData::from_pin(dir.join(map))
            .and_then(|m| m.info())
            .map(|i| i.max_entries())
            .map_err(map_err(map))
    };
    Ok([size(maps::BLOCK)?, size(maps::COUNTS)?, size(maps::WHITE)?])
}

/// Loads the program with new maps of `sizes`, pinned by name in `dir`.
fn load_pinned(dir: &Path, sizes: Sizes) -> Result<aya::Ebpf, XdpError> {
    let mut ebpf = EbpfLoader::new()
        .map_pin_path(dir)
        .set_max_entries(maps::BLOCK, sizes.max_entries)
        .set_max_entries(maps::COUNTS, sizes.max_entries)
        .set_max_entries(maps::WHITE, sizes.max_white)
        .load(OBJECT)
        .map_err(|e| XdpError::Load(chain(&e)))?;
    load_program(program(&mut ebpf)?, maps::BPF_PROGRAM)?;
    Ok(ebpf)
}

fn program(ebpf: &mut aya::Ebpf) -> Result<&mut Xdp, XdpError> {
    program_named(ebpf, maps::BPF_PROGRAM)
}

fn program_named<'e>(ebpf: &'e mut aya::Ebpf, name: &str) -> Result<&'e mut Xdp, XdpError> {
    ebpf.program_mut(name)
        .ok_or_else(|| XdpError::Load(format!("no program {name} in the object")))?
        .try_into()
        .map_err(|e: ProgramError| XdpError::Load(chain(&e)))
}

/// Replaces the adopted program and its maps (`old`) by ones of `sizes`, as the module doc says.
/// Until the link is updated nothing the kernel uses has changed: a failure before that leaves
/// the old program judging and removes the staged maps. A crash between the update and the last
/// rename leaves pins whose sizes do not match, so the next start resizes again.
fn resize<T>(
    pin_dir: &Path,
    link_pin: &Path,
    sizes: Sizes,
    old: Maps,
    fill: impl FnOnce(&mut Maps) -> Result<T, XdpError>,
) -> Result<(Attached, T), XdpError> {
    let staging = pin_dir.join(STAGING);
    remove_staging(pin_dir)?;
    std::fs::create_dir(&staging).map_err(|source| XdpError::Pin {
        path: staging.clone(),
        source,
    })?;
    let staged = (|| {
        let ebpf = load_pinned(&staging, sizes)?;
        let mut maps = open_pinned(&staging)?;
        let filled = fill(&mut maps)?;
        Ok((ebpf, maps, filled))
    })();
    let (mut ebpf, new_maps, filled) = match staged {
        Ok(s) => s,
        Err(e) => {
            let _ = remove_staging(pin_dir);
            return Err(e);
        }
    };
    let link_err = |reason: String| XdpError::Pin {
        path: link_pin.to_path_buf(),
        source: std::io::Error::other(reason),
    };
    let pinned = PinnedLink::from_pin(link_pin).map_err(|e| link_err(chain(&e)))?;
    let link = XdpLink::try_from(FdLink::from(pinned)).map_err(|e| link_err(chain(&e)))?;
    let prog = program(&mut ebpf)?;
    let id = prog
        .attach_to_link(link)
        .map_err(|e| link_err(format!("replacing the program: {}", chain(&e))))?;
    // The link stays as long as its pin; this process's descriptor of it goes with `link`.
    drop(prog.take_link(id));
    for name in maps::ALL {
        let (from, to) = (staging.join(name), pin_dir.join(name));
        std::fs::rename(&from, &to).map_err(|source| XdpError::Pin { path: to, source })?;
    }
    remove_staging(pin_dir)?;
    let attached = Attached {
        maps: new_maps,
        mode: AttachedAs::Resized,
        pin_dir: pin_dir.to_path_buf(),
        retired: Some(old),
    };
    Ok((attached, filled))
}

/// Removes what an interrupted resize left in the staging directory, and the directory.
fn remove_staging(pin_dir: &Path) -> Result<(), XdpError> {
    let staging = pin_dir.join(STAGING);
    remove_files(&staging, maps::ALL)?;
    match std::fs::remove_dir(&staging) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(XdpError::Pin {
            path: staging,
            source,
        }),
    }
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
    remove_files(pin_dir, std::iter::once(maps::LINK).chain(maps::ALL))?;
    remove_staging(pin_dir)
}

fn remove_files<'a>(dir: &Path, names: impl IntoIterator<Item = &'a str>) -> Result<(), XdpError> {
    for name in names {
        let path = dir.join(name);
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
