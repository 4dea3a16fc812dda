//! Batch collation: a step's token-id sequences (from the token cache, see
//! `simsweep_core::tokcache`) padded into input ids and an attention mask on the device.

use tch::{Device, Kind, Tensor};

/// Pad a list of token-id sequences to the longest into `[n, T]` input ids and a 0/1 attention mask.
pub fn collate(seqs: &[&[u32]], pad_id: i64, device: Device) -> (Tensor, Tensor) {
    let t = seqs.iter().map(|s| s.len()).max().unwrap_or(1).max(1);
    let mut ids = vec![pad_id; seqs.len() * t];
    let mut mask = vec![0i64; seqs.len() * t];
    for (i, s) in seqs.iter().enumerate() {
        for (d, &id) in ids[i * t..i * t + s.len()].iter_mut().zip(s.iter()) {
            *d = i64::from(id);
        }
        mask[i * t..i * t + s.len()].iter_mut().for_each(|m| *m = 1);
    }
    let shape = [seqs.len() as i64, t as i64];
    ids.extend_from_slice(&mask);
    let both = Tensor::from_slice(&ids).view([2, shape[0], shape[1]]);
    let both = match device {
        Device::Cpu => both,
        // One copy from page-locked memory, queued behind the device's work: the host goes on
        // preparing the step instead of waiting for the device to drain (a copy from pageable
        // memory synchronises).
        _ => both
            .pin_memory(device)
            .to_device_(device, Kind::Int64, true, false),
    };
    (both.get(0), both.get(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collate_pads_to_the_longest() {
        let a = [101u32, 7, 102];
        let b = [101u32, 102];
        let (ids, mask) = collate(&[&a, &b], 0, Device::Cpu);
        assert_eq!(ids.size(), vec![2, 3]);
        assert_eq!(
            Vec::<i64>::try_from(ids.flatten(0, -1)).unwrap(),
            vec![101, 7, 102, 101, 102, 0]
        );
        assert_eq!(
            Vec::<i64>::try_from(mask.flatten(0, -1)).unwrap(),
            vec![1, 1, 1, 1, 1, 0]
        );
    }
}
