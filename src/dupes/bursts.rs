//! Bursts: several shots of one scene taken within seconds by one camera. They look alike (a
//! near-duplicate group), but each is a photo of its own: the sharpest, the one where every
//! eye is open. Immich's users report thousands of such false "duplicates". A group is a
//! burst when EXIF says so; copies of one shot (a resized or re-encoded copy keeps its EXIF)
//! have one capture time and stay duplicates.

use crate::metadata::Shot;

/// The longest a burst lasts, first shot to last (nanoseconds): "within a few seconds".
pub const BURST_SPAN_NS: i64 = 5_000_000_000;

/// Whether the shots of a group's members (in any order; `None`: no EXIF) make a burst:
/// every member has a shot, all from one camera, spanning at most [`BURST_SPAN_NS`], at two
/// moments at least. A member without EXIF leaves the group a duplicate group (it may be a
/// copy that lost its EXIF; removing it is the user's call).
pub fn is_burst(shots: &[Option<Shot>]) -> bool {
    let Some(shots) = shots
        .iter()
        .map(Option::as_ref)
        .collect::<Option<Vec<&Shot>>>()
    else {
        return false;
    };
    let Some(first) = shots.first() else {
        return false;
    };
    if shots.iter().any(|s| s.camera != first.camera) {
        return false;
    }
    let earliest = shots.iter().map(|s| s.taken_ns).min().unwrap_or(0);
    let latest = shots.iter().map(|s| s.taken_ns).max().unwrap_or(0);
    latest > earliest && latest - earliest <= BURST_SPAN_NS
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shot(camera: &str, seconds: f64) -> Option<Shot> {
        Some(Shot {
            camera: camera.into(),
            taken_ns: (seconds * 1e9) as i64,
        })
    }

    #[test]
    fn shots_seconds_apart_from_one_camera_are_a_burst() {
        assert!(is_burst(&[
            shot("X", 10.0),
            shot("X", 10.3),
            shot("X", 11.5)
        ]));
        // A copy of one of them (same moment) inside the burst keeps it a burst.
        assert!(is_burst(&[
            shot("X", 10.0),
            shot("X", 10.0),
            shot("X", 12.0)
        ]));
    }

    #[test]
    fn copies_of_one_shot_other_cameras_long_gaps_and_missing_exif_are_not() {
        assert!(!is_burst(&[shot("X", 10.0), shot("X", 10.0)]));
        assert!(!is_burst(&[shot("X", 10.0), shot("Y", 10.5)]));
        assert!(!is_burst(&[shot("X", 10.0), shot("X", 16.0)]));
        assert!(!is_burst(&[shot("X", 10.0), None]));
        assert!(!is_burst(&[]));
    }
}
