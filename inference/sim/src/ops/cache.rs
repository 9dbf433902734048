//! KV cache writes: `ttnn.fill_cache`, `ttnn.experimental.paged_fill_cache` (prefill: a whole
//! sequence of one user) and `ttnn.experimental.paged_update_cache` (decode: one position per
//! user).
//!
//! The cache is an existing tensor the op writes in place, so it is declared as the op's
//! output and only the pages holding the updated rows are written (a tile page is rewritten
//! whole, as the kernels write whole tiles). A cache is `[users, kv_heads, max_seq, d]`, or,
//! paged, `[blocks, kv_heads, block_size, d]` with a page table `[users, blocks_per_user]`
//! (uint32, row-major) mapping a user's logical block to a physical one.

use super::{args_of, place_default_cbs};
use crate::chip::Chip;
use crate::dtype::PageLayout;
use crate::error::{SimError, SimResult};
use crate::host::HostTensor;
use crate::mesh::Mesh;
use crate::pages::TILE;
use crate::tensor::Tensor;

/// Where a user's sequence lives in a cache.
#[derive(Debug, Clone, Copy)]
enum Addressing<'a> {
    /// `[users, kv_heads, max_seq, d]`.
    Contiguous,
    /// `[blocks, kv_heads, block, d]` through a page table of `per_user` blocks per user.
    Paged { table: &'a HostTensor, block: usize },
}

impl Addressing<'_> {
    /// (outer index over the cache's first two dims, row) of `user`'s position `pos`, head `h`.
    fn locate(&self, op: &str, cache: &[usize], user: usize, pos: usize, h: usize) -> SimResult<(usize, usize)> {
        let (first, heads, rows) = (cache[0], cache[1], cache[2]);
        let (slot, row) = match *self {
            Addressing::Contiguous => (user, pos),
            Addressing::Paged { table, block } => {
                let per_user = table.last_dim();
                let logical = pos / block;
                if logical >= per_user || user * per_user >= table.len() {
                    return Err(SimError::invalid(
                        op,
                        format!("position {pos} of user {user} is outside the page table {:?}", table.shape),
                    ));
                }
                (table.data[user * per_user + logical] as usize, pos % block)
            }
        };
        if slot >= first || row >= rows || h >= heads {
            return Err(SimError::invalid(
                op,
                format!("user {user} position {pos} head {h} is outside the cache {cache:?}"),
            ));
        }
        Ok((slot * heads + h, row))
    }
}

/// The pages of `cache` holding row `row` of outer slice `outer` (all columns).
fn row_pages(cache: &Tensor, outer: usize, row: usize) -> Vec<u64> {
    let shape = cache.shape();
    let (h, w) = (shape[2], shape[3]);
    match cache.layout() {
        PageLayout::Tile => {
            let (th, tw) = (h.div_ceil(TILE), w.div_ceil(TILE));
            let first = outer * th * tw + (row / TILE) * tw;
            (first..first + tw).map(|p| p as u64).collect()
        }
        PageLayout::RowMajor => vec![(outer * h + row) as u64],
    }
}

/// Writes `rows` (outer slice, row, values) into `cache` on one chip, touching only their pages.
fn write_rows(chip: &mut Chip<'_>, cache: &Tensor, rows: &[(usize, usize, &[f32])]) -> SimResult<()> {
    let mut values = chip.read(cache);
    let (h, w) = (cache.shape()[2], cache.shape()[3]);
    let mut pages = Vec::new();
    for &(outer, row, data) in rows {
        let at = (outer * h + row) * w;
        values.data[at..at + w].copy_from_slice(data);
        pages.extend(row_pages(cache, outer, row));
    }
    pages.sort_unstable();
    pages.dedup();
    let bytes = cache.spec().format().encode(&values);
    chip.write_pages(cache, pages, &bytes)
}

fn rank4(op: &str, what: &str, t: &Tensor) -> SimResult<[usize; 4]> {
    match <[usize; 4]>::try_from(t.shape()) {
        Ok(shape) if !shape.contains(&0) => Ok(shape),
        _ => Err(SimError::invalid(op, format!("{what} must be rank 4 and not empty, got {:?}", t.shape()))),
    }
}

/// Runs a cache write: `cache` is declared written, `inputs` read; `kernel` gives the rows.
fn cache_op(
    mesh: &mut Mesh,
    name: &str,
    args: String,
    cache: &Tensor,
    inputs: &[&Tensor],
    kernel: impl Fn(&[HostTensor]) -> SimResult<Vec<(usize, usize, Vec<f32>)>> + Sync,
) -> SimResult<()> {
    let mut op = mesh.begin_op(name, args, inputs, &[cache], &[])?;
    place_default_cbs(&mut op, inputs, cache.spec())?;
    op.compute(|op| {
        op.run(|chip| {
            let ins: Vec<HostTensor> = inputs.iter().map(|t| chip.read(t)).collect();
            let rows = kernel(&ins)?;
            let refs: Vec<(usize, usize, &[f32])> = rows.iter().map(|(o, r, v)| (*o, *r, v.as_slice())).collect();
            write_rows(chip, cache, &refs)
        })?;
        Ok(())
    })?;
    op.finish()
}

/// The rows a prefill fill writes: every head and position of `input` (`[1, nkv, S, d]`).
fn fill_rows(
    name: &str,
    cache: &[usize],
    input: &HostTensor,
    user: usize,
    addressing: Addressing<'_>,
) -> SimResult<Vec<(usize, usize, Vec<f32>)>> {
    let (heads, s, d) = (input.shape[1], input.shape[2], input.shape[3]);
    let mut rows = Vec::with_capacity(heads * s);
    for h in 0..heads {
        for pos in 0..s {
            let (outer, row) = addressing.locate(name, cache, user, pos, h)?;
            let at = (h * s + pos) * d;
            rows.push((outer, row, input.data[at..at + d].to_vec()));
        }
    }
    Ok(rows)
}

fn check_fill(name: &str, cache: &Tensor, input: &Tensor) -> SimResult<[usize; 4]> {
    let c = rank4(name, "cache", cache)?;
    let i = rank4(name, "input", input)?;
    if i[0] != 1 || i[1] != c[1] || i[3] != c[3] {
        return Err(SimError::invalid(name, format!("input {i:?} does not fit the cache {c:?}")));
    }
    Ok(c)
}

/// `ttnn.fill_cache(cache, input, batch_idx)`: positions `0..S` of user `batch_idx` from
/// `input` (`[1, kv_heads, S, d]`) into the `[users, kv_heads, max_seq, d]` cache.
pub fn fill_cache(mesh: &mut Mesh, cache: &Tensor, input: &Tensor, batch_idx: usize) -> SimResult<()> {
    let name = "ttnn.fill_cache";
    let c = check_fill(name, cache, input)?;
    if batch_idx >= c[0] || input.shape()[2] > c[2] {
        return Err(SimError::invalid(name, format!("user {batch_idx}, {:?} into {c:?}", input.shape())));
    }
    let args = args_of(&[("batch_idx", batch_idx.to_string())]);
    cache_op(mesh, name, args, cache, &[input], |ins| fill_rows(name, &c, &ins[0], batch_idx, Addressing::Contiguous))
}

/// `ttnn.experimental.paged_fill_cache(cache, input, page_table, batch_idx)`: positions
/// `0..S` of user `batch_idx` into the blocks its page table row names.
pub fn paged_fill_cache(
    mesh: &mut Mesh,
    cache: &Tensor,
    input: &Tensor,
    page_table: &Tensor,
    batch_idx: usize,
) -> SimResult<()> {
    let name = "ttnn.experimental.paged_fill_cache";
    let c = check_fill(name, cache, input)?;
    let args = args_of(&[("batch_idx", batch_idx.to_string()), ("block_size", c[2].to_string())]);
    cache_op(mesh, name, args, cache, &[input, page_table], |ins| {
        fill_rows(name, &c, &ins[0], batch_idx, Addressing::Paged { table: &ins[1], block: c[2] })
    })
}

/// `ttnn.experimental.paged_update_cache(cache, input, update_idxs_tensor=positions,
/// page_table=...)`: for every user b, its new row `input[0, b, :kv_heads, :]` (`input` is
/// `[1, B, heads >= kv_heads, d]`, padded heads ignored) at position `positions[b]` (`[B]`
/// uint32). Without a page table the cache is `[users, kv_heads, max_seq, d]`.
pub fn paged_update_cache(
    mesh: &mut Mesh,
    cache: &Tensor,
    input: &Tensor,
    positions: &Tensor,
    page_table: Option<&Tensor>,
) -> SimResult<()> {
    let name = "ttnn.experimental.paged_update_cache";
    let c = rank4(name, "cache", cache)?;
    let [one, users, heads, d] = rank4(name, "input", input)?;
    if one != 1 || heads < c[1] || d != c[3] || positions.shape().iter().product::<usize>() != users {
        return Err(SimError::invalid(
            name,
            format!("input {:?} / positions {:?} do not fit the cache {c:?}", input.shape(), positions.shape()),
        ));
    }
    let mut inputs = vec![input, positions];
    inputs.extend(page_table);
    let args = args_of(&[("paged", page_table.is_some().to_string())]);
    cache_op(mesh, name, args, cache, &inputs, |ins| {
        let addressing = match ins.get(2) {
            Some(table) => Addressing::Paged { table, block: c[2] },
            None => Addressing::Contiguous,
        };
        let mut rows = Vec::with_capacity(users * c[1]);
        for user in 0..users {
            let pos = ins[1].data[user] as usize;
            for h in 0..c[1] {
                let (outer, row) = addressing.locate(name, &c, user, pos, h)?;
                let at = (user * heads + h) * d;
                rows.push((outer, row, ins[0].data[at..at + d].to_vec()));
            }
        }
        Ok(rows)
    })
}
