;; Round-to-nearest quantization kernels in WebAssembly SIMD: the same results as rtn.ts's scalar
;; kernels, bit for bit (codes, scales, zero points); only the order in which the error sums add up
;; differs. rtn-simd.ts places the floats in this memory, calls one kernel and copies the results out.
;;
;; Every value goes through f64 exactly as the scalar kernels compute it in JS doubles:
;;   t = v · inv + (zero + 0.5), code = clamp(trunc(t), 0, qmax), with trunc(±Inf or NaN) = 0 (JS `| 0`);
;;   inv = f32(1 / scale); err += (v − (code − zero) · scale)², ref += v².
;; Four values are one f32x4, handled as two f64x2 halves (`$quad`). Minimum and maximum use pmin/pmax,
;; which are `v < lo ? v : lo` like the scalar loops, so NaNs are skipped the same way.
(module
  (memory (export "memory") 1)
  ;; The error sums of the last kernel call.
  (global $err (export "err") (mut f64) (f64.const 0))
  (global $ref (export "ref") (mut f64) (f64.const 0))
  (global $errv (mut v128) (v128.const i64x2 0 0))
  (global $refv (mut v128) (v128.const i64x2 0 0))
  ;; The scale and zero point `$params` computed last.
  (global $ps (mut f32) (f32.const 0))
  (global $pz (mut i32) (i32.const 0))
  ;; Minimum and maximum of the last `$runMinMax`.
  (global $rlo (mut f32) (f32.const 0))
  (global $rhi (mut f32) (f32.const 0))

  ;; rtn.ts groupParams: scale and zero point of a group with minimum $lo and maximum $hi.
  (func $params (param $lo f32) (param $hi f32) (param $bits i32) (param $sym i32)
    (local $m f32) (local $mid i32) (local $qmax i32) (local $sc f32) (local $zf f64) (local $r f64)
    (local.set $qmax (i32.sub (i32.shl (i32.const 1) (local.get $bits)) (i32.const 1)))
    (local.set $mid (i32.shl (i32.const 1) (i32.sub (local.get $bits) (i32.const 1))))
    (if (local.get $sym)
      (then
        (if (i32.eq (local.get $bits) (i32.const 8))
          (then
            ;; scale = max|x| / 127
            (local.set $m (f32.max (f32.neg (local.get $lo)) (local.get $hi)))
            (global.set $ps
              (if (result f32) (f32.gt (local.get $m) (f32.const 0))
                (then (f32.demote_f64 (f64.div (f64.promote_f32 (local.get $m)) (f64.const 127))))
                (else (f32.const 1)))))
          (else
            ;; the value of largest magnitude, with its sign, maps to −mid
            (local.set $m
              (select (local.get $lo) (local.get $hi) (f32.gt (f32.neg (local.get $lo)) (local.get $hi))))
            (global.set $ps
              (if (result f32) (f32.ne (local.get $m) (f32.const 0))
                (then (f32.demote_f64 (f64.div (f64.promote_f32 (local.get $m))
                                               (f64.neg (f64.convert_i32_s (local.get $mid))))))
                (else (f32.const 1))))))
        (global.set $pz (local.get $mid))
        (return)))
    ;; asymmetric: the range widened to include 0
    (if (f32.gt (local.get $lo) (f32.const 0)) (then (local.set $lo (f32.const 0))))
    (if (f32.lt (local.get $hi) (f32.const 0)) (then (local.set $hi (f32.const 0))))
    (local.set $sc
      (f32.demote_f64 (f64.div (f64.sub (f64.promote_f32 (local.get $hi)) (f64.promote_f32 (local.get $lo)))
                               (f64.convert_i32_s (local.get $qmax)))))
    (if (i32.eqz (f32.gt (local.get $sc) (f32.const 0)))
      (then (global.set $ps (f32.const 1)) (global.set $pz (i32.const 0)) (return)))
    ;; zero = Math.round(−lo / scale), clamped to 0..qmax
    (local.set $zf (f64.div (f64.neg (f64.promote_f32 (local.get $lo))) (f64.promote_f32 (local.get $sc))))
    (local.set $r (f64.floor (local.get $zf)))
    (if (f64.ge (f64.sub (local.get $zf) (local.get $r)) (f64.const 0.5))
      (then (local.set $r (f64.add (local.get $r) (f64.const 1)))))
    (global.set $ps (local.get $sc))
    (global.set $pz
      (select (local.get $qmax)
        (select (i32.const 0) (i32.trunc_sat_f64_s (local.get $r)) (f64.lt (local.get $r) (f64.const 0)))
        (f64.gt (local.get $r) (f64.convert_i32_s (local.get $qmax))))))

  ;; f32(1 / scale), as the scalar kernels compute it (in f64, then rounded)
  (func $inv (param $s f32) (result f64)
    (f64.promote_f32 (f32.demote_f64 (f64.div (f64.const 1) (f64.promote_f32 (local.get $s))))))

  ;; One value: its code; adds to the scalar sums.
  (func $one (param $v f32) (param $inv f64) (param $zh f64) (param $s f64) (param $z f64) (param $qmax i32) (result i32)
    (local $vd f64) (local $t f64) (local $q i32) (local $d f64)
    (local.set $vd (f64.promote_f32 (local.get $v)))
    (local.set $t (f64.add (f64.mul (local.get $vd) (local.get $inv)) (local.get $zh)))
    (local.set $q
      (if (result i32) (f64.lt (f64.abs (local.get $t)) (f64.const 2147483648))
        (then (i32.trunc_f64_s (local.get $t)))
        (else (i32.const 0))))
    (if (i32.lt_s (local.get $q) (i32.const 0)) (then (local.set $q (i32.const 0))))
    (if (i32.gt_s (local.get $q) (local.get $qmax)) (then (local.set $q (local.get $qmax))))
    (local.set $d
      (f64.sub (local.get $vd)
        (f64.mul (f64.sub (f64.convert_i32_s (local.get $q)) (local.get $z)) (local.get $s))))
    (global.set $err (f64.add (global.get $err) (f64.mul (local.get $d) (local.get $d))))
    (global.set $ref (f64.add (global.get $ref) (f64.mul (local.get $vd) (local.get $vd))))
    (local.get $q))

  ;; $count groups of four values, at $p, $p + $step, …: codes, adding to the vector sums. Parameters per
  ;; lane as f64x2 pairs (lanes 0–1, lanes 2–3). Codes are stored four bytes together at $out, $out +
  ;; $ostep, … when $lane is 0, else lane j's at $out + j·$lane (a column each). One loop for every
  ;; kernel: V8 does not inline WebAssembly calls, so the per-value work must not be a call.
  (func $quads (param $p i32) (param $step i32) (param $count i32) (param $out i32) (param $ostep i32) (param $lane i32)
               (param $inv0 v128) (param $inv1 v128) (param $zh0 v128) (param $zh1 v128)
               (param $s0 v128) (param $s1 v128) (param $z0 v128) (param $z1 v128) (param $qmax v128)
    (local $v v128) (local $v0 v128) (local $v1 v128) (local $t v128) (local $q v128) (local $q0 v128) (local $d0 v128) (local $d1 v128)
    (local $err v128) (local $ref v128) (local $two v128)
    (local.set $two (v128.const f64x2 2147483648 2147483648))
    (block $done (loop $l
      (br_if $done (i32.eqz (local.get $count)))
      (local.set $v (v128.load (local.get $p)))
      (local.set $v0 (f64x2.promote_low_f32x4 (local.get $v)))
      (local.set $v1 (f64x2.promote_low_f32x4
        (i8x16.shuffle 8 9 10 11 12 13 14 15 0 1 2 3 4 5 6 7 (local.get $v) (local.get $v))))
      ;; t = v · inv + zh; trunc(t), 0 where t is not finite
      (local.set $t (f64x2.add (f64x2.mul (local.get $v0) (local.get $inv0)) (local.get $zh0)))
      (local.set $q0 (i32x4.trunc_sat_f64x2_s_zero
        (v128.and (local.get $t) (f64x2.lt (f64x2.abs (local.get $t)) (local.get $two)))))
      (local.set $t (f64x2.add (f64x2.mul (local.get $v1) (local.get $inv1)) (local.get $zh1)))
      (local.set $q (i8x16.shuffle 0 1 2 3 4 5 6 7 16 17 18 19 20 21 22 23 (local.get $q0)
        (i32x4.trunc_sat_f64x2_s_zero
          (v128.and (local.get $t) (f64x2.lt (f64x2.abs (local.get $t)) (local.get $two))))))
      (local.set $q (i32x4.min_s (i32x4.max_s (local.get $q) (v128.const i32x4 0 0 0 0)) (local.get $qmax)))
      ;; err += (v − (q − z) · s)², ref += v²
      (local.set $d0
        (f64x2.sub (local.get $v0)
          (f64x2.mul (f64x2.sub (f64x2.convert_low_i32x4_s (local.get $q)) (local.get $z0)) (local.get $s0))))
      (local.set $d1
        (f64x2.sub (local.get $v1)
          (f64x2.mul
            (f64x2.sub
              (f64x2.convert_low_i32x4_s
                (i8x16.shuffle 8 9 10 11 12 13 14 15 0 1 2 3 4 5 6 7 (local.get $q) (local.get $q)))
              (local.get $z1))
            (local.get $s1))))
      (local.set $err (f64x2.add (local.get $err)
        (f64x2.add (f64x2.mul (local.get $d0) (local.get $d0)) (f64x2.mul (local.get $d1) (local.get $d1)))))
      (local.set $ref (f64x2.add (local.get $ref)
        (f64x2.add (f64x2.mul (local.get $v0) (local.get $v0)) (f64x2.mul (local.get $v1) (local.get $v1)))))
      (if (local.get $lane)
        (then
          (i32.store8 (local.get $out) (i32x4.extract_lane 0 (local.get $q)))
          (i32.store8 (i32.add (local.get $out) (local.get $lane)) (i32x4.extract_lane 1 (local.get $q)))
          (i32.store8 (i32.add (local.get $out) (i32.shl (local.get $lane) (i32.const 1))) (i32x4.extract_lane 2 (local.get $q)))
          (i32.store8 (i32.add (local.get $out) (i32.mul (local.get $lane) (i32.const 3))) (i32x4.extract_lane 3 (local.get $q))))
        (else
          ;; the low byte of each lane (codes are 0..255), four bytes together
          (local.set $q (i16x8.narrow_i32x4_s (local.get $q) (local.get $q)))
          (v128.store32_lane 0 (local.get $out) (i8x16.narrow_i16x8_u (local.get $q) (local.get $q)))))
      (local.set $p (i32.add (local.get $p) (local.get $step)))
      (local.set $out (i32.add (local.get $out) (local.get $ostep)))
      (local.set $count (i32.sub (local.get $count) (i32.const 1)))
      (br $l)))
    (global.set $errv (f64x2.add (global.get $errv) (local.get $err)))
    (global.set $refv (f64x2.add (global.get $refv) (local.get $ref))))

  (func $start
    (global.set $err (f64.const 0)) (global.set $ref (f64.const 0))
    (global.set $errv (v128.const i64x2 0 0)) (global.set $refv (v128.const i64x2 0 0)))

  (func $finish
    (global.set $err (f64.add (global.get $err)
      (f64.add (f64x2.extract_lane 0 (global.get $errv)) (f64x2.extract_lane 1 (global.get $errv)))))
    (global.set $ref (f64.add (global.get $ref)
      (f64.add (f64x2.extract_lane 0 (global.get $refv)) (f64x2.extract_lane 1 (global.get $refv))))))

  ;; Minimum and maximum of $n contiguous floats at $p (from ±Inf, NaNs skipped) → $rlo, $rhi.
  (func $runMinMax (param $p i32) (param $n i32)
    (local $end i32) (local $end4 i32) (local $lo v128) (local $hi v128) (local $v v128) (local $l f32) (local $h f32) (local $x f32)
    (local.set $end (i32.add (local.get $p) (i32.shl (local.get $n) (i32.const 2))))
    (local.set $end4 (i32.add (local.get $p) (i32.shl (i32.and (local.get $n) (i32.const -4)) (i32.const 2))))
    (local.set $lo (v128.const f32x4 inf inf inf inf))
    (local.set $hi (v128.const f32x4 -inf -inf -inf -inf))
    (block $done
      (loop $l4
        (br_if $done (i32.ge_u (local.get $p) (local.get $end4)))
        (local.set $v (v128.load (local.get $p)))
        (local.set $lo (f32x4.pmin (local.get $lo) (local.get $v)))
        (local.set $hi (f32x4.pmax (local.get $hi) (local.get $v)))
        (local.set $p (i32.add (local.get $p) (i32.const 16)))
        (br $l4)))
    (local.set $l (f32x4.extract_lane 0 (local.get $lo)))
    (local.set $h (f32x4.extract_lane 0 (local.get $hi)))
    (local.set $x (f32x4.extract_lane 1 (local.get $lo)))
    (if (f32.lt (local.get $x) (local.get $l)) (then (local.set $l (local.get $x))))
    (local.set $x (f32x4.extract_lane 2 (local.get $lo)))
    (if (f32.lt (local.get $x) (local.get $l)) (then (local.set $l (local.get $x))))
    (local.set $x (f32x4.extract_lane 3 (local.get $lo)))
    (if (f32.lt (local.get $x) (local.get $l)) (then (local.set $l (local.get $x))))
    (local.set $x (f32x4.extract_lane 1 (local.get $hi)))
    (if (f32.gt (local.get $x) (local.get $h)) (then (local.set $h (local.get $x))))
    (local.set $x (f32x4.extract_lane 2 (local.get $hi)))
    (if (f32.gt (local.get $x) (local.get $h)) (then (local.set $h (local.get $x))))
    (local.set $x (f32x4.extract_lane 3 (local.get $hi)))
    (if (f32.gt (local.get $x) (local.get $h)) (then (local.set $h (local.get $x))))
    (block $done
      (loop $l1
        (br_if $done (i32.ge_u (local.get $p) (local.get $end)))
        (local.set $x (f32.load (local.get $p)))
        (if (f32.lt (local.get $x) (local.get $l)) (then (local.set $l (local.get $x))))
        (if (f32.gt (local.get $x) (local.get $h)) (then (local.set $h (local.get $x))))
        (local.set $p (i32.add (local.get $p) (i32.const 4)))
        (br $l1)))
    (global.set $rlo (local.get $l))
    (global.set $rhi (local.get $h)))

  ;; Codes of $n contiguous floats at $p with one scale $s and zero point $z, written to $out.
  (func $runQuant (param $p i32) (param $n i32) (param $out i32) (param $s f32) (param $z i32) (param $qmax i32)
    (local $end i32) (local $end4 i32) (local $inv f64) (local $zh f64) (local $sd f64) (local $zd f64)
    (local $invv v128) (local $zhv v128) (local $sv v128) (local $zv v128) (local $qm v128)
    (local.set $end (i32.add (local.get $p) (i32.shl (local.get $n) (i32.const 2))))
    (local.set $end4 (i32.add (local.get $p) (i32.shl (i32.and (local.get $n) (i32.const -4)) (i32.const 2))))
    (local.set $inv (call $inv (local.get $s)))
    (local.set $zd (f64.convert_i32_s (local.get $z)))
    (local.set $zh (f64.add (local.get $zd) (f64.const 0.5)))
    (local.set $sd (f64.promote_f32 (local.get $s)))
    (local.set $invv (f64x2.splat (local.get $inv)))
    (local.set $zhv (f64x2.splat (local.get $zh)))
    (local.set $sv (f64x2.splat (local.get $sd)))
    (local.set $zv (f64x2.splat (local.get $zd)))
    (local.set $qm (i32x4.splat (local.get $qmax)))
    (call $quads (local.get $p) (i32.const 16) (i32.shr_u (local.get $n) (i32.const 2)) (local.get $out) (i32.const 4) (i32.const 0)
      (local.get $invv) (local.get $invv) (local.get $zhv) (local.get $zhv) (local.get $sv) (local.get $sv) (local.get $zv) (local.get $zv) (local.get $qm))
    (local.set $p (local.get $end4))
    (local.set $out (i32.add (local.get $out) (i32.and (local.get $n) (i32.const -4))))
    (block $done
      (loop $l1
        (br_if $done (i32.ge_u (local.get $p) (local.get $end)))
        (i32.store8 (local.get $out)
          (call $one (f32.load (local.get $p)) (local.get $inv) (local.get $zh) (local.get $sd) (local.get $zd) (local.get $qmax)))
        (local.set $p (i32.add (local.get $p) (i32.const 4)))
        (local.set $out (i32.add (local.get $out) (i32.const 1)))
        (br $l1))))

  ;; rtn.ts quantizeAxis: [outer, C, inner] floats at $x, one scale per index of C.
  ;; $w: scratch of 8·C bytes (minimum, maximum per channel).
  (func (export "axis") (param $x i32) (param $outer i32) (param $C i32) (param $inner i32) (param $bits i32) (param $sym i32)
        (param $codes i32) (param $scales i32) (param $zeros i32) (param $w i32)
    (local $o i32) (local $c i32) (local $p i32) (local $out i32) (local $lo i32) (local $hi i32) (local $l f32) (local $h f32)
    (local $qmax i32) (local $run i32)
    (call $start)
    (local.set $qmax (i32.sub (i32.shl (i32.const 1) (local.get $bits)) (i32.const 1)))
    (local.set $lo (local.get $w))
    (local.set $hi (i32.add (local.get $w) (i32.shl (local.get $C) (i32.const 2))))
    (local.set $run (i32.shl (local.get $inner) (i32.const 2)))
    (local.set $c (i32.const 0))
    (block $done (loop $init
      (br_if $done (i32.ge_u (local.get $c) (local.get $C)))
      (f32.store (i32.add (local.get $lo) (i32.shl (local.get $c) (i32.const 2))) (f32.const inf))
      (f32.store (i32.add (local.get $hi) (i32.shl (local.get $c) (i32.const 2))) (f32.const -inf))
      (local.set $c (i32.add (local.get $c) (i32.const 1)))
      (br $init)))
    ;; minimum and maximum per channel, over every run of it
    (local.set $p (local.get $x))
    (local.set $o (i32.const 0))
    (block $done (loop $outerLoop
      (br_if $done (i32.ge_u (local.get $o) (local.get $outer)))
      (local.set $c (i32.const 0))
      (block $cdone (loop $cl
        (br_if $cdone (i32.ge_u (local.get $c) (local.get $C)))
        (call $runMinMax (local.get $p) (local.get $inner))
        (local.set $l (f32.load (i32.add (local.get $lo) (i32.shl (local.get $c) (i32.const 2)))))
        (local.set $h (f32.load (i32.add (local.get $hi) (i32.shl (local.get $c) (i32.const 2)))))
        (if (f32.lt (global.get $rlo) (local.get $l))
          (then (f32.store (i32.add (local.get $lo) (i32.shl (local.get $c) (i32.const 2))) (global.get $rlo))))
        (if (f32.gt (global.get $rhi) (local.get $h))
          (then (f32.store (i32.add (local.get $hi) (i32.shl (local.get $c) (i32.const 2))) (global.get $rhi))))
        (local.set $p (i32.add (local.get $p) (local.get $run)))
        (local.set $c (i32.add (local.get $c) (i32.const 1)))
        (br $cl)))
      (local.set $o (i32.add (local.get $o) (i32.const 1)))
      (br $outerLoop)))
    ;; scales and zero points (a channel with no value but NaNs: as zeros)
    (local.set $c (i32.const 0))
    (block $done (loop $pl
      (br_if $done (i32.ge_u (local.get $c) (local.get $C)))
      (local.set $l (f32.load (i32.add (local.get $lo) (i32.shl (local.get $c) (i32.const 2)))))
      (local.set $h (f32.load (i32.add (local.get $hi) (i32.shl (local.get $c) (i32.const 2)))))
      (call $params
        (select (f32.const 0) (local.get $l) (f32.eq (local.get $l) (f32.const inf)))
        (select (f32.const 0) (local.get $h) (f32.eq (local.get $h) (f32.const -inf)))
        (local.get $bits) (local.get $sym))
      (f32.store (i32.add (local.get $scales) (i32.shl (local.get $c) (i32.const 2))) (global.get $ps))
      (i32.store8 (i32.add (local.get $zeros) (local.get $c)) (global.get $pz))
      (local.set $c (i32.add (local.get $c) (i32.const 1)))
      (br $pl)))
    ;; codes
    (local.set $p (local.get $x))
    (local.set $out (local.get $codes))
    (local.set $o (i32.const 0))
    (block $done (loop $outerLoop
      (br_if $done (i32.ge_u (local.get $o) (local.get $outer)))
      (local.set $c (i32.const 0))
      (block $cdone (loop $cl
        (br_if $cdone (i32.ge_u (local.get $c) (local.get $C)))
        (call $runQuant (local.get $p) (local.get $inner) (local.get $out)
          (f32.load (i32.add (local.get $scales) (i32.shl (local.get $c) (i32.const 2))))
          (i32.load8_u (i32.add (local.get $zeros) (local.get $c)))
          (local.get $qmax))
        (local.set $p (i32.add (local.get $p) (local.get $run)))
        (local.set $out (i32.add (local.get $out) (local.get $inner)))
        (local.set $c (i32.add (local.get $c) (i32.const 1)))
        (br $cl)))
      (local.set $o (i32.add (local.get $o) (i32.const 1)))
      (br $outerLoop)))
    (call $finish))

  ;; rtn.ts quantizeAxis with inner = 1: [rows, C] floats at $x, one scale per column, four columns
  ;; at a time. $w: scratch of 8·C bytes (minimum, maximum) + 32·C bytes (f64 parameters).
  (func (export "columns") (param $x i32) (param $rows i32) (param $C i32) (param $bits i32) (param $sym i32)
        (param $codes i32) (param $scales i32) (param $zeros i32) (param $w i32)
    (local $r i32) (local $c i32) (local $C4 i32) (local $p i32) (local $out i32) (local $a i32) (local $v v128)
    (local $lo i32) (local $hi i32) (local $pinv i32) (local $pzh i32) (local $ps i32) (local $pz i32)
    (local $l f32) (local $h f32) (local $x1 f32) (local $s f32) (local $z i32) (local $qmax i32) (local $qm v128)
    (local $n i32) (local $j i32)
    (call $start)
    (local.set $qmax (i32.sub (i32.shl (i32.const 1) (local.get $bits)) (i32.const 1)))
    (local.set $qm (i32x4.splat (local.get $qmax)))
    (local.set $C4 (i32.and (local.get $C) (i32.const -4)))
    (local.set $lo (local.get $w))
    (local.set $hi (i32.add (local.get $lo) (i32.shl (local.get $C) (i32.const 2))))
    (local.set $pinv (i32.add (local.get $hi) (i32.shl (local.get $C) (i32.const 2))))
    (local.set $pzh (i32.add (local.get $pinv) (i32.shl (local.get $C) (i32.const 3))))
    (local.set $ps (i32.add (local.get $pzh) (i32.shl (local.get $C) (i32.const 3))))
    (local.set $pz (i32.add (local.get $ps) (i32.shl (local.get $C) (i32.const 3))))
    (local.set $c (i32.const 0))
    (block $done (loop $init
      (br_if $done (i32.ge_u (local.get $c) (local.get $C)))
      (f32.store (i32.add (local.get $lo) (i32.shl (local.get $c) (i32.const 2))) (f32.const inf))
      (f32.store (i32.add (local.get $hi) (i32.shl (local.get $c) (i32.const 2))) (f32.const -inf))
      (local.set $c (i32.add (local.get $c) (i32.const 1)))
      (br $init)))
    ;; minimum and maximum per column, row by row
    (local.set $p (local.get $x))
    (local.set $r (i32.const 0))
    (block $done (loop $rl
      (br_if $done (i32.ge_u (local.get $r) (local.get $rows)))
      (local.set $c (i32.const 0))
      (block $cdone (loop $cl
        (br_if $cdone (i32.ge_u (local.get $c) (local.get $C4)))
        (local.set $v (v128.load (i32.add (local.get $p) (i32.shl (local.get $c) (i32.const 2)))))
        (local.set $a (i32.add (local.get $lo) (i32.shl (local.get $c) (i32.const 2))))
        (v128.store (local.get $a) (f32x4.pmin (v128.load (local.get $a)) (local.get $v)))
        (local.set $a (i32.add (local.get $hi) (i32.shl (local.get $c) (i32.const 2))))
        (v128.store (local.get $a) (f32x4.pmax (v128.load (local.get $a)) (local.get $v)))
        (local.set $c (i32.add (local.get $c) (i32.const 4)))
        (br $cl)))
      (block $cdone (loop $cl
        (br_if $cdone (i32.ge_u (local.get $c) (local.get $C)))
        (local.set $x1 (f32.load (i32.add (local.get $p) (i32.shl (local.get $c) (i32.const 2)))))
        (local.set $a (i32.add (local.get $lo) (i32.shl (local.get $c) (i32.const 2))))
        (if (f32.lt (local.get $x1) (f32.load (local.get $a))) (then (f32.store (local.get $a) (local.get $x1))))
        (local.set $a (i32.add (local.get $hi) (i32.shl (local.get $c) (i32.const 2))))
        (if (f32.gt (local.get $x1) (f32.load (local.get $a))) (then (f32.store (local.get $a) (local.get $x1))))
        (local.set $c (i32.add (local.get $c) (i32.const 1)))
        (br $cl)))
      (local.set $p (i32.add (local.get $p) (i32.shl (local.get $C) (i32.const 2))))
      (local.set $r (i32.add (local.get $r) (i32.const 1)))
      (br $rl)))
    ;; parameters per column
    (local.set $c (i32.const 0))
    (block $done (loop $pl
      (br_if $done (i32.ge_u (local.get $c) (local.get $C)))
      (local.set $l (f32.load (i32.add (local.get $lo) (i32.shl (local.get $c) (i32.const 2)))))
      (local.set $h (f32.load (i32.add (local.get $hi) (i32.shl (local.get $c) (i32.const 2)))))
      (call $params
        (select (f32.const 0) (local.get $l) (f32.eq (local.get $l) (f32.const inf)))
        (select (f32.const 0) (local.get $h) (f32.eq (local.get $h) (f32.const -inf)))
        (local.get $bits) (local.get $sym))
      (local.set $s (global.get $ps))
      (local.set $z (global.get $pz))
      (f32.store (i32.add (local.get $scales) (i32.shl (local.get $c) (i32.const 2))) (local.get $s))
      (i32.store8 (i32.add (local.get $zeros) (local.get $c)) (local.get $z))
      (f64.store (i32.add (local.get $pinv) (i32.shl (local.get $c) (i32.const 3))) (call $inv (local.get $s)))
      (f64.store (i32.add (local.get $pzh) (i32.shl (local.get $c) (i32.const 3)))
        (f64.add (f64.convert_i32_s (local.get $z)) (f64.const 0.5)))
      (f64.store (i32.add (local.get $ps) (i32.shl (local.get $c) (i32.const 3))) (f64.promote_f32 (local.get $s)))
      (f64.store (i32.add (local.get $pz) (i32.shl (local.get $c) (i32.const 3))) (f64.convert_i32_s (local.get $z)))
      (local.set $c (i32.add (local.get $c) (i32.const 1)))
      (br $pl)))
    ;; codes, 64 rows at a time (their lines stay in cache from one group of four columns to the next)
    (local.set $r (i32.const 0))
    (block $done (loop $rl
      (br_if $done (i32.ge_u (local.get $r) (local.get $rows)))
      (local.set $n (i32.sub (local.get $rows) (local.get $r)))
      (if (i32.gt_u (local.get $n) (i32.const 64)) (then (local.set $n (i32.const 64))))
      (local.set $p (i32.add (local.get $x) (i32.shl (i32.mul (local.get $r) (local.get $C)) (i32.const 2))))
      (local.set $out (i32.add (local.get $codes) (i32.mul (local.get $r) (local.get $C))))
      (local.set $c (i32.const 0))
      (block $cdone (loop $cl
        (br_if $cdone (i32.ge_u (local.get $c) (local.get $C4)))
        (local.set $a (i32.shl (local.get $c) (i32.const 3)))
        (call $quads (i32.add (local.get $p) (i32.shl (local.get $c) (i32.const 2))) (i32.shl (local.get $C) (i32.const 2)) (local.get $n)
          (i32.add (local.get $out) (local.get $c)) (local.get $C) (i32.const 0)
          (v128.load (i32.add (local.get $pinv) (local.get $a))) (v128.load offset=16 (i32.add (local.get $pinv) (local.get $a)))
          (v128.load (i32.add (local.get $pzh) (local.get $a))) (v128.load offset=16 (i32.add (local.get $pzh) (local.get $a)))
          (v128.load (i32.add (local.get $ps) (local.get $a))) (v128.load offset=16 (i32.add (local.get $ps) (local.get $a)))
          (v128.load (i32.add (local.get $pz) (local.get $a))) (v128.load offset=16 (i32.add (local.get $pz) (local.get $a)))
          (local.get $qm))
        (local.set $c (i32.add (local.get $c) (i32.const 4)))
        (br $cl)))
      ;; the last C mod 4 columns, one value at a time
      (block $cdone (loop $cl
        (br_if $cdone (i32.ge_u (local.get $c) (local.get $C)))
        (local.set $a (i32.shl (local.get $c) (i32.const 3)))
        (local.set $j (i32.const 0))
        (block $jdone (loop $jl
          (br_if $jdone (i32.ge_u (local.get $j) (local.get $n)))
          (i32.store8 (i32.add (local.get $out) (i32.add (i32.mul (local.get $j) (local.get $C)) (local.get $c)))
            (call $one (f32.load (i32.add (local.get $p) (i32.shl (i32.add (i32.mul (local.get $j) (local.get $C)) (local.get $c)) (i32.const 2))))
              (f64.load (i32.add (local.get $pinv) (local.get $a))) (f64.load (i32.add (local.get $pzh) (local.get $a)))
              (f64.load (i32.add (local.get $ps) (local.get $a))) (f64.load (i32.add (local.get $pz) (local.get $a)))
              (local.get $qmax)))
          (local.set $j (i32.add (local.get $j) (i32.const 1)))
          (br $jl)))
        (local.set $c (i32.add (local.get $c) (i32.const 1)))
        (br $cl)))
      (local.set $r (i32.add (local.get $r) (local.get $n)))
      (br $rl)))
    (call $finish))

  ;; rtn.ts quantizeBlocks: rows [R, K] at $x, groups of $block consecutive values of a row.
  (func (export "blocks") (param $x i32) (param $R i32) (param $K i32) (param $block i32) (param $bits i32) (param $sym i32)
        (param $codes i32) (param $scales i32) (param $zeros i32)
    (local $r i32) (local $k i32) (local $n i32) (local $g i32) (local $p i32) (local $out i32) (local $qmax i32)
    (call $start)
    (local.set $qmax (i32.sub (i32.shl (i32.const 1) (local.get $bits)) (i32.const 1)))
    (local.set $p (local.get $x))
    (local.set $out (local.get $codes))
    (local.set $g (i32.const 0))
    (local.set $r (i32.const 0))
    (block $done (loop $rl
      (br_if $done (i32.ge_u (local.get $r) (local.get $R)))
      (local.set $k (i32.const 0))
      (block $kdone (loop $kl
        (br_if $kdone (i32.ge_u (local.get $k) (local.get $K)))
        (local.set $n (i32.sub (local.get $K) (local.get $k)))
        (if (i32.gt_u (local.get $n) (local.get $block)) (then (local.set $n (local.get $block))))
        (call $runMinMax (local.get $p) (local.get $n))
        (call $params (global.get $rlo) (global.get $rhi) (local.get $bits) (local.get $sym))
        (f32.store (i32.add (local.get $scales) (i32.shl (local.get $g) (i32.const 2))) (global.get $ps))
        (i32.store8 (i32.add (local.get $zeros) (local.get $g)) (global.get $pz))
        (call $runQuant (local.get $p) (local.get $n) (local.get $out) (global.get $ps) (global.get $pz) (local.get $qmax))
        (local.set $p (i32.add (local.get $p) (i32.shl (local.get $n) (i32.const 2))))
        (local.set $out (i32.add (local.get $out) (local.get $n)))
        (local.set $g (i32.add (local.get $g) (i32.const 1)))
        (local.set $k (i32.add (local.get $k) (local.get $block)))
        (br $kl)))
      (local.set $r (i32.add (local.get $r) (i32.const 1)))
      (br $rl)))
    (call $finish))

;; rtn.ts quantizeBlocksColumns: [K, N] floats at $x, blocks of $block rows down each column, codes
  ;; in rows layout [N, K]; scales, zeros [N, ceil(K / block)]. Four columns at a time: a block of them
  ;; is read twice (minimum/maximum, then codes) from lines still in cache. $w: 32 bytes of scratch.
  (func (export "blockColumns") (param $x i32) (param $K i32) (param $N i32) (param $block i32) (param $bits i32) (param $sym i32)
        (param $codes i32) (param $scales i32) (param $zeros i32) (param $w i32)
    (local $nb i32) (local $b i32) (local $k0 i32) (local $k1 i32) (local $n i32) (local $N4 i32) (local $j i32)
    (local $row i32) (local $p i32) (local $end i32) (local $at i32) (local $qmax i32) (local $qm v128)
    (local $lo v128) (local $hi v128) (local $v v128) (local $q v128) (local $s v128) (local $zi v128)
    (local $inv0 v128) (local $inv1 v128) (local $zh0 v128) (local $zh1 v128)
    (local $s0 v128) (local $s1 v128) (local $z0 v128) (local $z1 v128)
    (local $l f32) (local $h f32) (local $x1 f32) (local $inv f64) (local $sd f64) (local $zd f64)
    (call $start)
    (local.set $qmax (i32.sub (i32.shl (i32.const 1) (local.get $bits)) (i32.const 1)))
    (local.set $qm (i32x4.splat (local.get $qmax)))
    (local.set $nb (i32.div_u (i32.sub (i32.add (local.get $K) (local.get $block)) (i32.const 1)) (local.get $block)))
    (local.set $N4 (i32.and (local.get $N) (i32.const -4)))
    (local.set $row (i32.shl (local.get $N) (i32.const 2)))
    (local.set $b (i32.const 0))
    (block $done (loop $bl
      (br_if $done (i32.ge_u (local.get $b) (local.get $nb)))
      (local.set $k0 (i32.mul (local.get $b) (local.get $block)))
      (local.set $k1 (i32.add (local.get $k0) (local.get $block)))
      (if (i32.gt_u (local.get $k1) (local.get $K)) (then (local.set $k1 (local.get $K))))
      (local.set $end (i32.add (local.get $x) (i32.mul (local.get $k1) (local.get $row))))
      ;; four columns at a time
      (local.set $n (i32.const 0))
      (block $ndone (loop $nl
        (br_if $ndone (i32.ge_u (local.get $n) (local.get $N4)))
        (local.set $p (i32.add (local.get $x) (i32.add (i32.mul (local.get $k0) (local.get $row)) (i32.shl (local.get $n) (i32.const 2)))))
        (local.set $lo (v128.load (local.get $p)))
        (local.set $hi (local.get $lo))
        (local.set $p (i32.add (local.get $p) (local.get $row)))
        (block $kdone (loop $kl
          (br_if $kdone (i32.ge_u (local.get $p) (local.get $end)))
          (local.set $v (v128.load (local.get $p)))
          (local.set $lo (f32x4.pmin (local.get $lo) (local.get $v)))
          (local.set $hi (f32x4.pmax (local.get $hi) (local.get $v)))
          (local.set $p (i32.add (local.get $p) (local.get $row)))
          (br $kl)))
        ;; the four columns' parameters: scale and zero of column n + j at (n + j)·nb + b
        (call $params (f32x4.extract_lane 0 (local.get $lo)) (f32x4.extract_lane 0 (local.get $hi)) (local.get $bits) (local.get $sym))
        (local.set $s (f32x4.replace_lane 0 (local.get $s) (global.get $ps)))
        (local.set $zi (i32x4.replace_lane 0 (local.get $zi) (global.get $pz)))
        (call $params (f32x4.extract_lane 1 (local.get $lo)) (f32x4.extract_lane 1 (local.get $hi)) (local.get $bits) (local.get $sym))
        (local.set $s (f32x4.replace_lane 1 (local.get $s) (global.get $ps)))
        (local.set $zi (i32x4.replace_lane 1 (local.get $zi) (global.get $pz)))
        (call $params (f32x4.extract_lane 2 (local.get $lo)) (f32x4.extract_lane 2 (local.get $hi)) (local.get $bits) (local.get $sym))
        (local.set $s (f32x4.replace_lane 2 (local.get $s) (global.get $ps)))
        (local.set $zi (i32x4.replace_lane 2 (local.get $zi) (global.get $pz)))
        (call $params (f32x4.extract_lane 3 (local.get $lo)) (f32x4.extract_lane 3 (local.get $hi)) (local.get $bits) (local.get $sym))
        (local.set $s (f32x4.replace_lane 3 (local.get $s) (global.get $ps)))
        (local.set $zi (i32x4.replace_lane 3 (local.get $zi) (global.get $pz)))
        (v128.store (local.get $w) (local.get $s))
        (v128.store offset=16 (local.get $w) (local.get $zi))
        (local.set $j (i32.const 0))
        (block $jdone (loop $jl
          (br_if $jdone (i32.ge_u (local.get $j) (i32.const 4)))
          (local.set $at (i32.add (i32.mul (i32.add (local.get $n) (local.get $j)) (local.get $nb)) (local.get $b)))
          (f32.store (i32.add (local.get $scales) (i32.shl (local.get $at) (i32.const 2)))
            (f32.load (i32.add (local.get $w) (i32.shl (local.get $j) (i32.const 2)))))
          (i32.store8 (i32.add (local.get $zeros) (local.get $at))
            (i32.load offset=16 (i32.add (local.get $w) (i32.shl (local.get $j) (i32.const 2)))))
          (local.set $j (i32.add (local.get $j) (i32.const 1)))
          (br $jl)))
        (local.set $s0 (f64x2.promote_low_f32x4 (local.get $s)))
        (local.set $s1 (f64x2.promote_low_f32x4 (i8x16.shuffle 8 9 10 11 12 13 14 15 0 1 2 3 4 5 6 7 (local.get $s) (local.get $s))))
        (local.set $inv0 (f64x2.promote_low_f32x4 (f32x4.demote_f64x2_zero (f64x2.div (v128.const f64x2 1 1) (local.get $s0)))))
        (local.set $inv1 (f64x2.promote_low_f32x4 (f32x4.demote_f64x2_zero (f64x2.div (v128.const f64x2 1 1) (local.get $s1)))))
        (local.set $z0 (f64x2.convert_low_i32x4_s (local.get $zi)))
        (local.set $z1 (f64x2.convert_low_i32x4_s (i8x16.shuffle 8 9 10 11 12 13 14 15 0 1 2 3 4 5 6 7 (local.get $zi) (local.get $zi))))
        (local.set $zh0 (f64x2.add (local.get $z0) (v128.const f64x2 0.5 0.5)))
        (local.set $zh1 (f64x2.add (local.get $z1) (v128.const f64x2 0.5 0.5)))
        ;; codes: column n + j's at (n + j)·K + k
        (local.set $p (i32.add (local.get $x) (i32.add (i32.mul (local.get $k0) (local.get $row)) (i32.shl (local.get $n) (i32.const 2)))))
        (local.set $at (i32.add (local.get $codes) (i32.add (i32.mul (local.get $n) (local.get $K)) (local.get $k0))))
        (call $quads (local.get $p) (local.get $row) (i32.sub (local.get $k1) (local.get $k0)) (local.get $at) (i32.const 1) (local.get $K)
          (local.get $inv0) (local.get $inv1) (local.get $zh0) (local.get $zh1) (local.get $s0) (local.get $s1) (local.get $z0) (local.get $z1) (local.get $qm))
        (local.set $n (i32.add (local.get $n) (i32.const 4)))
        (br $nl)))
      ;; the last N mod 4 columns, one at a time
      (block $ndone (loop $nl
        (br_if $ndone (i32.ge_u (local.get $n) (local.get $N)))
        (local.set $p (i32.add (local.get $x) (i32.add (i32.mul (local.get $k0) (local.get $row)) (i32.shl (local.get $n) (i32.const 2)))))
        (local.set $l (f32.load (local.get $p)))
        (local.set $h (local.get $l))
        (local.set $p (i32.add (local.get $p) (local.get $row)))
        (block $kdone (loop $kl
          (br_if $kdone (i32.ge_u (local.get $p) (local.get $end)))
          (local.set $x1 (f32.load (local.get $p)))
          (if (f32.lt (local.get $x1) (local.get $l)) (then (local.set $l (local.get $x1))))
          (if (f32.gt (local.get $x1) (local.get $h)) (then (local.set $h (local.get $x1))))
          (local.set $p (i32.add (local.get $p) (local.get $row)))
          (br $kl)))
        (call $params (local.get $l) (local.get $h) (local.get $bits) (local.get $sym))
        (local.set $at (i32.add (i32.mul (local.get $n) (local.get $nb)) (local.get $b)))
        (f32.store (i32.add (local.get $scales) (i32.shl (local.get $at) (i32.const 2))) (global.get $ps))
        (i32.store8 (i32.add (local.get $zeros) (local.get $at)) (global.get $pz))
        (local.set $inv (call $inv (global.get $ps)))
        (local.set $sd (f64.promote_f32 (global.get $ps)))
        (local.set $zd (f64.convert_i32_s (global.get $pz)))
        (local.set $p (i32.add (local.get $x) (i32.add (i32.mul (local.get $k0) (local.get $row)) (i32.shl (local.get $n) (i32.const 2)))))
        (local.set $at (i32.add (local.get $codes) (i32.add (i32.mul (local.get $n) (local.get $K)) (local.get $k0))))
        (block $kdone (loop $kl
          (br_if $kdone (i32.ge_u (local.get $p) (local.get $end)))
          (i32.store8 (local.get $at)
            (call $one (f32.load (local.get $p)) (local.get $inv) (f64.add (local.get $zd) (f64.const 0.5))
                       (local.get $sd) (local.get $zd) (local.get $qmax)))
          (local.set $p (i32.add (local.get $p) (local.get $row)))
          (local.set $at (i32.add (local.get $at) (i32.const 1)))
          (br $kl)))
        (local.set $n (i32.add (local.get $n) (i32.const 1)))
        (br $nl)))
      (local.set $b (i32.add (local.get $b) (i32.const 1)))
      (br $bl)))
    (call $finish))

  ;; 4-bit codes two per byte: $dst[i] = $src[2i] | $src[2i + 1] << 4 for $n codes ($n even), eight
  ;; bytes out per sixteen in. What MatMulNBits reads when K is a whole number of blocks.
  (func (export "packNibbles") (param $src i32) (param $n i32) (param $dst i32)
    (local $end i32) (local $end16 i32) (local $v v128)
    (local.set $end (i32.add (local.get $src) (local.get $n)))
    (local.set $end16 (i32.add (local.get $src) (i32.and (local.get $n) (i32.const -16))))
    (block $done (loop $l
      (br_if $done (i32.ge_u (local.get $src) (local.get $end16)))
      ;; each i16 lane holds an even code (low byte) and the odd one after it (high byte)
      (local.set $v (v128.load (local.get $src)))
      (local.set $v (v128.or (v128.and (local.get $v) (v128.const i16x8 255 255 255 255 255 255 255 255))
                             (i16x8.shl (i16x8.shr_u (local.get $v) (i32.const 8)) (i32.const 4))))
      (v128.store64_lane 0 (local.get $dst) (i8x16.narrow_i16x8_u (local.get $v) (local.get $v)))
      (local.set $src (i32.add (local.get $src) (i32.const 16)))
      (local.set $dst (i32.add (local.get $dst) (i32.const 8)))
      (br $l)))
    (block $done (loop $l
      (br_if $done (i32.ge_u (local.get $src) (local.get $end)))
      (i32.store8 (local.get $dst)
        (i32.or (i32.load8_u (local.get $src)) (i32.shl (i32.load8_u offset=1 (local.get $src)) (i32.const 4))))
      (local.set $src (i32.add (local.get $src) (i32.const 2)))
      (local.set $dst (i32.add (local.get $dst) (i32.const 1)))
      (br $l))))
)
