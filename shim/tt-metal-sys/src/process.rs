//! Process-wide state: tt-metal is a singleton (one `MetalContext`, one mock configuration per
//! process), so loading, configuring and opening are guarded here.

use crate::error::TtError;
use crate::ffi;
use crate::root::RuntimeRoot;
use crate::types::Arch;
use std::ffi::CString;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

struct State {
    loaded_from: Option<PathBuf>,
    configured: Option<(Arch, u32)>,
    mesh_open: bool,
}

static STATE: Mutex<State> = Mutex::new(State { loaded_from: None, configured: None, mesh_open: false });

fn path_cstring(p: &Path) -> Result<CString, TtError> {
    CString::new(p.as_os_str().as_encoded_bytes())
        .map_err(|_| TtError::Argument(format!("path contains a NUL byte: {}", p.display())))
}

/// Sets tt-metal's environment for mock mode. Must run before the library is loaded: some of
/// these are read by static initialisers.
fn set_mock_env(root: &RuntimeRoot, scratch: &Path) {
    std::env::set_var("TT_METAL_RUNTIME_ROOT", root.runtime_dir());
    // Without these, every run leaves a 16 MiB OpenMPI segment and tt_device_* files in /dev/shm.
    std::env::set_var("TT_METAL_SHM_TRACKING_DISABLED", "1");
    std::env::set_var("OMPI_MCA_btl", "self");
    if std::env::var_os("TT_METAL_CACHE").is_none() {
        std::env::set_var("TT_METAL_CACHE", scratch.join("cache"));
    }
    if std::env::var_os("TT_METAL_LOGGER_LEVEL").is_none() {
        std::env::set_var("TT_METAL_LOGGER_LEVEL", "error");
    }
}

/// Loads the library once per process and configures mock mode once per process; marks a mesh
/// as open. `scratch` receives tt-metal's cache.
pub(crate) fn acquire(root: &RuntimeRoot, arch: Arch, chips: u32, scratch: &Path, mock: bool) -> Result<(), TtError> {
    let mut st = STATE.lock().map_err(|_| TtError::Process("tt-metal process state poisoned".into()))?;
    if st.mesh_open {
        return Err(TtError::Process("a tt-metal mesh is already open in this process (tt-metal allows one)".into()));
    }
    match &st.loaded_from {
        Some(prev) if prev != root.path() => {
            return Err(TtError::Process(format!(
                "tt-metal was already loaded from {} in this process; cannot switch to {}",
                prev.display(),
                root.path().display()
            )))
        }
        Some(_) => {}
        None => {
            root.check()?;
            set_mock_env(root, scratch);
            let metal = path_cstring(&root.metal_lib())?;
            let ttnn = path_cstring(&root.ttnn_lib())?;
            let mut err = ffi::err_buf();
            // SAFETY: both strings are NUL-terminated and outlive the call; err is ERR_LEN long.
            let rc = unsafe { ffi::ttsan_tt_load(metal.as_ptr(), ttnn.as_ptr(), err.as_mut_ptr(), err.len()) };
            if rc != ffi::OK {
                return Err(TtError::Load(ffi::err_text(&err)));
            }
            st.loaded_from = Some(root.path().to_path_buf());
        }
    }
    match st.configured {
        _ if !mock => {}
        Some(prev) if prev != (arch, chips) => {
            return Err(TtError::Process(format!(
                "mock mode is already configured for {} x{} in this process; tt-metal cannot switch to {} x{}",
                prev.0, prev.1, arch, chips
            )))
        }
        Some(_) => {}
        None => {
            let mut err = ffi::err_buf();
            // SAFETY: the library is loaded; err is ERR_LEN long.
            let rc = unsafe { ffi::ttsan_tt_configure_mock(arch.raw(), chips, err.as_mut_ptr(), err.len()) };
            if rc != ffi::OK {
                return Err(TtError::Call { what: "configure_mock_mode", message: ffi::err_text(&err) });
            }
            st.configured = Some((arch, chips));
        }
    }
    st.mesh_open = true;
    Ok(())
}

/// Marks the mesh closed.
pub(crate) fn release() {
    if let Ok(mut st) = STATE.lock() {
        st.mesh_open = false;
    }
}
