;; Magnitude pruning of one float32 tensor in place, in WebAssembly (SIMD for the write pass): what
;; unstructured.ts's pruneMagnitudeInPlaceJs does, with the same elements zeroed, bit for bit. The k-th
;; smallest |x| is found by the same two-pass radix select (`histogram` of the top 16 bits of |x|'s bits,
;; `scan`, then of the low 16 bits inside the chosen bin, `scan` again); then `write` zeroes keys below
;; it, keeps keys above, and of the keys equal to it zeroes the first (k − below) in storage order. A
;; tensor may go through in chunks (magnitude-simd.ts): the histograms and the write pass's counts, sums
;; and ties carry over from call to call. Four values at a time, except a group of four holding a key
;; equal to the threshold, which goes one by one, in order. The sums Σx² and Σx²·dropped add up in
;; another order than the JS loop's (relative ~1e-12).
(module
  (memory (export "memory") 1)
  (global $zeros (export "zeros") (mut i32) (i32.const 0))
  (global $total (export "total") (mut f64) (f64.const 0))
  (global $removed (export "removed") (mut f64) (f64.const 0))
  ;; from $scan: the bin found and how many keys lie below it
  (global $bin (export "bin") (mut i32) (i32.const 0))
  (global $below (export "below") (mut i32) (i32.const 0))
  ;; the write pass's threshold and ties left
  (global $bits (mut i32) (i32.const 0))
  (global $ties (mut i32) (i32.const 0))

  ;; Adds to the histogram at $h (65,536 u32) the keys of $n floats at $x: their top 16 bits ($b < 0), or
  ;; their low 16 bits where the top 16 bits are $b. A tensor may come in several calls (chunks).
  (func (export "histogram") (param $x i32) (param $n i32) (param $h i32) (param $b i32)
    (local $end i32) (local $end4 i32) (local $v i32) (local $bv v128)
    (local.set $end (i32.add (local.get $x) (i32.shl (local.get $n) (i32.const 2))))
    (if (i32.lt_s (local.get $b) (i32.const 0))
      (then
        (block $done (loop $l
          (br_if $done (i32.ge_u (local.get $x) (local.get $end)))
          (local.set $v (i32.add (local.get $h)
            (i32.shl (i32.shr_u (i32.and (i32.load (local.get $x)) (i32.const 0x7fffffff)) (i32.const 16)) (i32.const 2))))
          (i32.store (local.get $v) (i32.add (i32.load (local.get $v)) (i32.const 1)))
          (local.set $x (i32.add (local.get $x) (i32.const 4)))
          (br $l)))
        (return)))
    ;; low halves inside bin $b: four keys at a time are skipped when none is in it
    (local.set $bv (i32x4.splat (local.get $b)))
    (local.set $end4 (i32.add (local.get $x) (i32.shl (i32.and (local.get $n) (i32.const -4)) (i32.const 2))))
    (block $done (loop $l
      (br_if $done (i32.ge_u (local.get $x) (local.get $end4)))
      (if (v128.any_true (i32x4.eq (i32x4.shr_u (v128.and (v128.load (local.get $x)) (v128.const i32x4 0x7fffffff 0x7fffffff 0x7fffffff 0x7fffffff))
                                                (i32.const 16))
                                   (local.get $bv)))
        (then
          (call $low1 (local.get $x) (local.get $h) (local.get $b))
          (call $low1 (i32.add (local.get $x) (i32.const 4)) (local.get $h) (local.get $b))
          (call $low1 (i32.add (local.get $x) (i32.const 8)) (local.get $h) (local.get $b))
          (call $low1 (i32.add (local.get $x) (i32.const 12)) (local.get $h) (local.get $b))))
      (local.set $x (i32.add (local.get $x) (i32.const 16)))
      (br $l)))
    (block $done (loop $l
      (br_if $done (i32.ge_u (local.get $x) (local.get $end)))
      (call $low1 (local.get $x) (local.get $h) (local.get $b))
      (local.set $x (i32.add (local.get $x) (i32.const 4)))
      (br $l))))

  ;; one key of the low-half histogram
  (func $low1 (param $x i32) (param $h i32) (param $b i32)
    (local $v i32) (local $a i32)
    (local.set $v (i32.and (i32.load (local.get $x)) (i32.const 0x7fffffff)))
    (if (i32.eq (i32.shr_u (local.get $v) (i32.const 16)) (local.get $b))
      (then
        (local.set $a (i32.add (local.get $h) (i32.shl (i32.and (local.get $v) (i32.const 0xffff)) (i32.const 2))))
        (i32.store (local.get $a) (i32.add (i32.load (local.get $a)) (i32.const 1))))))

  ;; Zeroes the histogram at $h.
  (func (export "clear") (param $h i32)
    (memory.fill (local.get $h) (i32.const 0) (i32.const 262144)))

  ;; The first bin at which the count reaches $k, starting from $below keys: → $bin, $below.
  (func (export "scan") (param $h i32) (param $k i32) (param $below i32)
    (local $b i32) (local $c i32)
    (block $done (loop $l
      (br_if $done (i32.ge_u (local.get $b) (i32.const 65536)))
      (local.set $c (i32.load (i32.add (local.get $h) (i32.shl (local.get $b) (i32.const 2)))))
      (br_if $done (i32.ge_u (i32.add (local.get $below) (local.get $c)) (local.get $k)))
      (local.set $below (i32.add (local.get $below) (local.get $c)))
      (local.set $b (i32.add (local.get $b) (i32.const 1)))
      (br $l)))
    (global.set $bin (local.get $b))
    (global.set $below (local.get $below)))

  ;; One value in the write pass (unstructured.ts writePass's loop body); adds to the sums and counts.
  (func $one (param $x i32)
    (local $w i32) (local $kv i32) (local $keep i32) (local $v f64) (local $v2 f64)
    (local.set $w (i32.load (local.get $x)))
    (local.set $kv (i32.and (local.get $w) (i32.const 0x7fffffff)))
    (local.set $keep (i32.gt_s (local.get $kv) (global.get $bits)))
    (if (i32.eq (local.get $kv) (global.get $bits))
      (then
        (local.set $keep (i32.le_s (global.get $ties) (i32.const 0)))
        (global.set $ties (i32.sub (global.get $ties) (i32.sub (i32.const 1) (local.get $keep))))))
    (i32.store (local.get $x) (i32.and (local.get $w) (i32.sub (i32.const 0) (local.get $keep))))
    (local.set $v (f64.promote_f32 (f32.reinterpret_i32 (local.get $w))))
    (local.set $v2 (f64.mul (local.get $v) (local.get $v)))
    (global.set $total (f64.add (global.get $total) (local.get $v2)))
    (global.set $removed (f64.add (global.get $removed)
      (f64.mul (local.get $v2) (f64.convert_i32_s (i32.sub (i32.const 1) (local.get $keep))))))
    (global.set $zeros (i32.add (global.get $zeros)
      (i32.add (i32.sub (i32.const 1) (local.get $keep))
               (i32.and (local.get $keep) (i32.eqz (local.get $kv)))))))

  ;; Starts a tensor: sums and counts to 0; keys above $bits are kept, and of those equal to it the first
  ;; $ties (in storage order, over all the write calls) zeroed. $bits = −1 keeps everything.
  (func (export "start") (param $bits i32) (param $ties i32)
    (global.set $zeros (i32.const 0))
    (global.set $total (f64.const 0))
    (global.set $removed (f64.const 0))
    (global.set $bits (local.get $bits))
    (global.set $ties (local.get $ties)))

  ;; The write pass over $n floats at $x, in place (a tensor may come in several calls, in order): keys
  ;; below the threshold zeroed, ties as they come; adds to $zeros (values zero afterwards), $total (Σx²)
  ;; and $removed (Σx² of those zeroed).
  (func (export "write") (param $x i32) (param $n i32)
    (local $end i32) (local $end4 i32) (local $v v128) (local $kv v128) (local $keep v128) (local $drop v128)
    (local $bitsv v128) (local $v0 v128) (local $v1 v128) (local $sq0 v128) (local $sq1 v128)
    (local $total v128) (local $removed v128) (local $dropped v128) (local $zk v128)
    (local.set $bitsv (i32x4.splat (global.get $bits)))
    (local.set $end (i32.add (local.get $x) (i32.shl (local.get $n) (i32.const 2))))
    (local.set $end4 (i32.add (local.get $x) (i32.shl (i32.and (local.get $n) (i32.const -4)) (i32.const 2))))
    (block $done (loop $l
      (br_if $done (i32.ge_u (local.get $x) (local.get $end4)))
      (local.set $v (v128.load (local.get $x)))
      (local.set $kv (v128.and (local.get $v) (v128.const i32x4 0x7fffffff 0x7fffffff 0x7fffffff 0x7fffffff)))
      (if (v128.any_true (i32x4.eq (local.get $kv) (local.get $bitsv)))
        (then
          ;; a key equal to the threshold: ties are counted down in storage order
          (call $one (local.get $x))
          (call $one (i32.add (local.get $x) (i32.const 4)))
          (call $one (i32.add (local.get $x) (i32.const 8)))
          (call $one (i32.add (local.get $x) (i32.const 12))))
        (else
          (local.set $keep (i32x4.gt_s (local.get $kv) (local.get $bitsv)))
          (v128.store (local.get $x) (v128.and (local.get $v) (local.get $keep)))
          ;; drop = 1 − keep (keep is −1 or 0 per lane)
          (local.set $drop (i32x4.add (local.get $keep) (v128.const i32x4 1 1 1 1)))
          (local.set $dropped (i32x4.add (local.get $dropped) (local.get $drop)))
          (local.set $zk (i32x4.sub (local.get $zk)
            (v128.and (local.get $keep) (i32x4.eq (local.get $kv) (v128.const i32x4 0 0 0 0)))))
          (local.set $v0 (f64x2.promote_low_f32x4 (local.get $v)))
          (local.set $v1 (f64x2.promote_low_f32x4
            (i8x16.shuffle 8 9 10 11 12 13 14 15 0 1 2 3 4 5 6 7 (local.get $v) (local.get $v))))
          (local.set $sq0 (f64x2.mul (local.get $v0) (local.get $v0)))
          (local.set $sq1 (f64x2.mul (local.get $v1) (local.get $v1)))
          (local.set $total (f64x2.add (local.get $total) (f64x2.add (local.get $sq0) (local.get $sq1))))
          ;; x² · drop in f64, as the JS does (∞ · 0 is NaN there too)
          (local.set $removed (f64x2.add (local.get $removed)
            (f64x2.add
              (f64x2.mul (local.get $sq0) (f64x2.convert_low_i32x4_s (local.get $drop)))
              (f64x2.mul (local.get $sq1) (f64x2.convert_low_i32x4_s
                (i8x16.shuffle 8 9 10 11 12 13 14 15 0 1 2 3 4 5 6 7 (local.get $drop) (local.get $drop)))))))))
      (local.set $x (i32.add (local.get $x) (i32.const 16)))
      (br $l)))
    (block $done (loop $l
      (br_if $done (i32.ge_u (local.get $x) (local.get $end)))
      (call $one (local.get $x))
      (local.set $x (i32.add (local.get $x) (i32.const 4)))
      (br $l)))
    (global.set $zeros (i32.add (global.get $zeros)
      (i32.add (i32.add (i32x4.extract_lane 0 (local.get $dropped)) (i32x4.extract_lane 1 (local.get $dropped)))
               (i32.add (i32x4.extract_lane 2 (local.get $dropped)) (i32x4.extract_lane 3 (local.get $dropped))))))
    (global.set $zeros (i32.add (global.get $zeros)
      (i32.add (i32.add (i32x4.extract_lane 0 (local.get $zk)) (i32x4.extract_lane 1 (local.get $zk)))
               (i32.add (i32x4.extract_lane 2 (local.get $zk)) (i32x4.extract_lane 3 (local.get $zk))))))
    (global.set $total (f64.add (global.get $total)
      (f64.add (f64x2.extract_lane 0 (local.get $total)) (f64x2.extract_lane 1 (local.get $total)))))
    (global.set $removed (f64.add (global.get $removed)
      (f64.add (f64x2.extract_lane 0 (local.get $removed)) (f64x2.extract_lane 1 (local.get $removed))))))
)
