//! Moving tensors between the host and the mesh (`ttnn.from_torch` / `ttnn.to_torch`).

use super::error::{SimError, SimResult};
use super::host::HostTensor;
use super::mesh::Mesh;
use super::tensor::{Distribution, Tensor, TensorSpec};
use ttsan_events::Role;

impl Mesh {
    /// The per-chip pieces of `host` under `dist`, in device order.
    pub fn distribute(&self, host: &HostTensor, dist: &Distribution) -> SimResult<Vec<HostTensor>> {
        let (rows, cols) = (self.desc.rows as usize, self.desc.cols as usize);
        let split = |dim: Option<usize>, parts: usize| -> SimResult<Vec<HostTensor>> {
            match dim {
                Some(d) => host.split(d, parts),
                None => Ok(vec![host.clone(); parts]),
            }
        };
        match dist {
            Distribution::Replicate => Ok(vec![host.clone(); rows * cols]),
            Distribution::ShardAll { dim } => host.split(*dim, rows * cols),
            Distribution::Shard { axis: 0, dim } => {
                self.distribute(host, &Distribution::Shard2d { rows: Some(*dim), cols: None })
            }
            Distribution::Shard { axis: 1, dim } => {
                self.distribute(host, &Distribution::Shard2d { rows: None, cols: Some(*dim) })
            }
            Distribution::Shard { axis, .. } => {
                Err(SimError::invalid("from_host", format!("mesh axis {axis} does not exist (0 = rows, 1 = columns)")))
            }
            Distribution::Shard2d { rows: rd, cols: cd } => {
                if rd.is_some() && rd == cd {
                    return Err(SimError::invalid("from_host", "rows and columns cannot shard the same dim"));
                }
                let mut out = Vec::with_capacity(rows * cols);
                let by_row = split(*rd, rows)?;
                for piece in by_row {
                    let by_col = match cd {
                        Some(d) => piece.split(*d, cols)?,
                        None => vec![piece; cols],
                    };
                    out.extend(by_col);
                }
                Ok(out)
            }
        }
    }

    /// Puts a host tensor on the mesh: allocates the buffer, writes every chip's piece, and
    /// starts guarding it if the guard selection picks it.
    pub fn from_host(
        &mut self,
        host: &HostTensor,
        spec: &TensorSpec,
        dist: &Distribution,
        name: &str,
        role: Role,
    ) -> SimResult<Tensor> {
        let pieces = self.distribute(host, dist)?;
        self.from_host_per_device(pieces, spec, name, role)
    }

    /// Puts one host tensor per chip (device order) on the mesh; each must have `spec.shape`.
    pub fn from_host_per_device(
        &mut self,
        pieces: Vec<HostTensor>,
        spec: &TensorSpec,
        name: &str,
        role: Role,
    ) -> SimResult<Tensor> {
        if pieces.len() != self.num_devices() {
            return Err(SimError::invalid(
                "from_host",
                format!("{} pieces for a mesh of {} chips", pieces.len(), self.num_devices()),
            ));
        }
        if let Some(bad) = pieces.iter().find(|p| p.shape != spec.shape) {
            return Err(SimError::invalid(
                "from_host",
                format!("piece of shape {:?} does not match the spec's {:?}", bad.shape, spec.shape),
            ));
        }
        self.check_values(&pieces, "from_host")?;
        let t = self.alloc_buffer(spec, name, role, None)?;
        if !self.placement_only() {
            self.host_pass(pieces, &|chip, piece| chip.write(&t, &piece))?;
        }
        self.maybe_guard(&t);
        Ok(t)
    }

    /// Writes new values into an existing tensor from the host (`ttnn.copy_host_to_device_tensor`).
    pub fn write_host(&mut self, t: &Tensor, pieces: Vec<HostTensor>) -> SimResult<()> {
        self.check_live(t)?;
        if pieces.len() != self.num_devices() {
            return Err(SimError::invalid("write_host", "one piece per chip is needed"));
        }
        self.check_values(&pieces, "write_host")?;
        if !self.placement_only() {
            self.host_pass(pieces, &|chip, piece| chip.write(t, &piece))?;
        }
        Ok(())
    }

    /// One zero tensor of `shape` per chip, as the host would upload them; shape-only on a
    /// placement-only mesh, which writes no value (a full-size KV cache of zeros would take
    /// gigabytes of host memory for nothing).
    pub fn zeros_per_device(&self, shape: &[usize]) -> Vec<HostTensor> {
        let one = match self.placement_only() {
            true => HostTensor::shape_only(shape),
            false => HostTensor::zeros(shape),
        };
        vec![one; self.num_devices()]
    }

    /// Shape-only pieces carry no values to write: only a placement-only mesh takes them.
    fn check_values(&self, pieces: &[HostTensor], op: &str) -> SimResult<()> {
        if !self.placement_only() && pieces.iter().any(HostTensor::is_shape_only) {
            return Err(SimError::invalid(op, "a shape-only host tensor has no values to write"));
        }
        Ok(())
    }

    /// One host tensor from every chip's values (`ConcatMesh2dToTensor`): chips of a column
    /// are concatenated along `rows` (or the first row's chips taken if `None`), the chips of
    /// a row along `cols` (or the first column taken).
    pub fn compose(&mut self, t: &Tensor, rows: Option<usize>, cols: Option<usize>) -> SimResult<HostTensor> {
        let pieces = self.to_host(t)?;
        let c = self.desc.cols as usize;
        let row_tensors = pieces
            .chunks(c.max(1))
            .map(|row| match cols {
                Some(d) => HostTensor::concat(row, d),
                None => Ok(row[0].clone()),
            })
            .collect::<SimResult<Vec<_>>>()?;
        match rows {
            Some(d) => HostTensor::concat(&row_tensors, d),
            None => row_tensors.into_iter().next().ok_or_else(|| SimError::invalid("compose", "empty mesh")),
        }
    }

    /// Every chip's values of `t`, in device order (`ttnn.to_torch` without a composer).
    pub fn to_host(&mut self, t: &Tensor) -> SimResult<Vec<HostTensor>> {
        self.check_live(t)?;
        let n = self.num_devices();
        if self.placement_only() {
            // Nothing was computed: the read-back is the shape the data path would get.
            return Ok(vec![HostTensor::shape_only(t.shape()); n]);
        }
        self.host_pass(vec![(); n], &|chip, ()| Ok(chip.read(t)))
    }
}
