//! Batch collation: a step's token-id sequences (from the token cache, see
//! `simsweep_core::tokcache`) padded into input ids and an attention mask on the device.

use crate::model::EncodedBatch;
use tch::Device;

/// Pad a list of token-id sequences to the longest into `[n, T]` input ids, a 0/1 attention mask
/// and the real-token index, on `device` in one copy ([`EncodedBatch::from_host`]).
pub fn collate(seqs: &[&[u32]], pad_id: i64, device: Device) -> EncodedBatch {
    let t = seqs.iter().map(|s| s.len()).max().unwrap_or(1).max(1);
    let mut ids = vec![pad_id; seqs.len() * t];
    let mut mask = vec![0i64; seqs.len() * t];
    for (i, s) in seqs.iter().enumerate() {
        for (d, &id) in ids[i * t..i * t + s.len()].iter_mut().zip(s.iter()) {
            *d = i64::from(id);
        }
        mask[i * t..i * t + s.len()].iter_mut().for_each(|m| *m = 1);
    }
    EncodedBatch::from_host(&ids, &mask, [seqs.len() as i64, t as i64], device)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collate_pads_to_the_longest() {
        let a = [101u32, 7, 102];
        let b = [101u32, 102];
        let batch = collate(&[&a, &b], 0, Device::Cpu);
        assert_eq!(batch.input_ids.size(), vec![2, 3]);
        assert_eq!(
            Vec::<i64>::try_from(batch.input_ids.flatten(0, -1)).unwrap(),
            vec![101, 7, 102, 101, 102, 0]
        );
        assert_eq!(
            Vec::<i64>::try_from(batch.attention_mask.flatten(0, -1)).unwrap(),
            vec![1, 1, 1, 1, 1, 0]
        );
        assert_eq!(
            Vec::<i64>::try_from(batch.real.as_ref().unwrap()).unwrap(),
            vec![0, 1, 2, 3, 4]
        );
        let same = collate(&[&a, &a], 0, Device::Cpu);
        assert!(same.real.is_none(), "nothing padded: no index");
    }
}
