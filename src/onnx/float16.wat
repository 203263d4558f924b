;; float32 → float16 conversion, clamped to ±65504, with the error it makes, in WebAssembly SIMD: the same
;; bit patterns as float16.ts's float32ArrayToFloat16(…, 'clamp') (round to nearest even, NaN payloads
;; as x86 F16C), and the sums Σ(x − back)², Σx² that toFloat16Measured computes in JS doubles (back = the
;; float16 read back as float32). Only the order in which the sums add up differs.
;;
;; Four values at a time: when all four are normal float16s after rounding (2^-14 ≤ |x| < 65520), the
;; conversion is integer arithmetic on their bit patterns; otherwise each of the four takes the scalar
;; path ($one), which handles subnormals, overflow, infinities and NaN.
(module
  (memory (export "memory") 1)
  (global $err (export "err") (mut f64) (f64.const 0))
  (global $ref (export "ref") (mut f64) (f64.const 0))

  ;; float16 bits of float32 bits $x, clamped: finite values from 65520 on and ±Inf become ±65504
  (func $half (param $x i32) (result i32)
    (local $sign i32) (local $a i32) (local $e i32) (local $mant i32) (local $shift i32)
    (local.set $sign (i32.and (i32.shr_u (local.get $x) (i32.const 16)) (i32.const 0x8000)))
    (local.set $a (i32.and (local.get $x) (i32.const 0x7fffffff)))
    (if (i32.ge_u (local.get $a) (i32.const 0x38800000))
      (then
        (if (i32.ge_u (local.get $a) (i32.const 0x477ff000))
          (then
            (if (i32.le_u (local.get $a) (i32.const 0x7f800000))
              (then (return (i32.or (local.get $sign) (i32.const 0x7bff)))))
            ;; NaN: quiet bit + top 10 payload bits
            (return (i32.or (i32.or (local.get $sign) (i32.const 0x7e00))
                            (i32.and (i32.shr_u (local.get $a) (i32.const 13)) (i32.const 0x3ff))))))
        (return (i32.or (local.get $sign)
          (i32.shr_u
            (i32.add (i32.add (i32.sub (local.get $a) (i32.const 0x38000000)) (i32.const 0xfff))
                     (i32.and (i32.shr_u (local.get $a) (i32.const 13)) (i32.const 1)))
            (i32.const 13))))))
    (if (i32.gt_u (local.get $a) (i32.const 0x33000000))
      (then
        ;; a float16 subnormal: m · 2^-24, m = mant >> (126 − e), rounded to nearest even
        (local.set $e (i32.shr_u (local.get $a) (i32.const 23)))
        (local.set $mant (i32.or (i32.and (local.get $a) (i32.const 0x7fffff)) (i32.const 0x800000)))
        (local.set $shift (i32.sub (i32.const 126) (local.get $e)))
        (return (i32.or (local.get $sign)
          (i32.shr_u
            (i32.add
              (i32.sub (i32.add (local.get $mant) (i32.shl (i32.const 1) (i32.sub (local.get $shift) (i32.const 1)))) (i32.const 1))
              (i32.and (i32.shr_u (local.get $mant) (local.get $shift)) (i32.const 1)))
            (local.get $shift))))))
    (local.get $sign))

  ;; the float32 value of float16 bits $h
  (func $back (param $h i32) (result f32)
    (local $sign i32) (local $e i32) (local $m i32) (local $v f32)
    (local.set $sign (i32.shl (i32.and (local.get $h) (i32.const 0x8000)) (i32.const 16)))
    (local.set $e (i32.and (i32.shr_u (local.get $h) (i32.const 10)) (i32.const 0x1f)))
    (local.set $m (i32.and (local.get $h) (i32.const 0x3ff)))
    (if (i32.eq (local.get $e) (i32.const 0x1f))
      (then (return (f32.reinterpret_i32
        (i32.or (i32.or (local.get $sign) (i32.const 0x7f800000)) (i32.shl (local.get $m) (i32.const 13)))))))
    (if (local.get $e)
      (then (return (f32.reinterpret_i32
        (i32.or (i32.or (local.get $sign) (i32.shl (i32.add (local.get $e) (i32.const 112)) (i32.const 23)))
                (i32.shl (local.get $m) (i32.const 13)))))))
    ;; zero or subnormal: m · 2^-24, exact
    (local.set $v (f32.mul (f32.convert_i32_u (local.get $m)) (f32.const 0x1p-24)))
    (select (f32.neg (local.get $v)) (local.get $v) (local.get $sign)))

  ;; one value at $src: its float16 at $dst, its error into the sums
  (func $one (param $src i32) (param $dst i32)
    (local $x f32) (local $h i32) (local $d f64) (local $xd f64)
    (local.set $x (f32.load (local.get $src)))
    (local.set $h (call $half (i32.reinterpret_f32 (local.get $x))))
    (i32.store16 (local.get $dst) (local.get $h))
    (local.set $xd (f64.promote_f32 (local.get $x)))
    (local.set $d (f64.sub (local.get $xd) (f64.promote_f32 (call $back (local.get $h)))))
    (global.set $err (f64.add (global.get $err) (f64.mul (local.get $d) (local.get $d))))
    (global.set $ref (f64.add (global.get $ref) (f64.mul (local.get $xd) (local.get $xd)))))

  ;; $n float32s at $src → float16s at $dst; the sums of this call in $err, $ref
  (func (export "toHalfMeasured") (param $src i32) (param $n i32) (param $dst i32)
    (local $end i32) (local $end4 i32) (local $x v128) (local $a v128) (local $h v128) (local $back v128)
    (local $x0 v128) (local $x1 v128) (local $d0 v128) (local $d1 v128) (local $err v128) (local $ref v128)
    (global.set $err (f64.const 0))
    (global.set $ref (f64.const 0))
    (local.set $end (i32.add (local.get $src) (i32.shl (local.get $n) (i32.const 2))))
    (local.set $end4 (i32.add (local.get $src) (i32.shl (i32.and (local.get $n) (i32.const -4)) (i32.const 2))))
    (block $done (loop $l
      (br_if $done (i32.ge_u (local.get $src) (local.get $end4)))
      (local.set $x (v128.load (local.get $src)))
      (local.set $a (v128.and (local.get $x) (v128.const i32x4 0x7fffffff 0x7fffffff 0x7fffffff 0x7fffffff)))
      (if (i32x4.all_true
            (v128.and (i32x4.ge_u (local.get $a) (v128.const i32x4 0x38800000 0x38800000 0x38800000 0x38800000))
                      (i32x4.lt_u (local.get $a) (v128.const i32x4 0x477ff000 0x477ff000 0x477ff000 0x477ff000))))
        (then
          ;; sign | (a − 0x38000000 + 0xfff + ((a >> 13) & 1)) >> 13
          (local.set $h
            (v128.or
              (v128.and (i32x4.shr_u (local.get $x) (i32.const 16)) (v128.const i32x4 0x8000 0x8000 0x8000 0x8000))
              (i32x4.shr_u
                (i32x4.add
                  (i32x4.add (local.get $a) (v128.const i32x4 0xc8000fff 0xc8000fff 0xc8000fff 0xc8000fff))
                  (v128.and (i32x4.shr_u (local.get $a) (i32.const 13)) (v128.const i32x4 1 1 1 1)))
                (i32.const 13))))
          (v128.store64_lane 0 (local.get $dst) (i16x8.narrow_i32x4_u (local.get $h) (local.get $h)))
          ;; read back: sign << 16 | ((h & 0x7fff) << 13) + 0x38000000
          (local.set $back
            (v128.or
              (i32x4.shl (v128.and (local.get $h) (v128.const i32x4 0x8000 0x8000 0x8000 0x8000)) (i32.const 16))
              (i32x4.add (i32x4.shl (v128.and (local.get $h) (v128.const i32x4 0x7fff 0x7fff 0x7fff 0x7fff)) (i32.const 13))
                         (v128.const i32x4 0x38000000 0x38000000 0x38000000 0x38000000))))
          (local.set $x0 (f64x2.promote_low_f32x4 (local.get $x)))
          (local.set $x1 (f64x2.promote_low_f32x4
            (i8x16.shuffle 8 9 10 11 12 13 14 15 0 1 2 3 4 5 6 7 (local.get $x) (local.get $x))))
          (local.set $d0 (f64x2.sub (local.get $x0) (f64x2.promote_low_f32x4 (local.get $back))))
          (local.set $d1 (f64x2.sub (local.get $x1) (f64x2.promote_low_f32x4
            (i8x16.shuffle 8 9 10 11 12 13 14 15 0 1 2 3 4 5 6 7 (local.get $back) (local.get $back)))))
          (local.set $err (f64x2.add (local.get $err)
            (f64x2.add (f64x2.mul (local.get $d0) (local.get $d0)) (f64x2.mul (local.get $d1) (local.get $d1)))))
          (local.set $ref (f64x2.add (local.get $ref)
            (f64x2.add (f64x2.mul (local.get $x0) (local.get $x0)) (f64x2.mul (local.get $x1) (local.get $x1))))))
        (else
          (call $one (local.get $src) (local.get $dst))
          (call $one (i32.add (local.get $src) (i32.const 4)) (i32.add (local.get $dst) (i32.const 2)))
          (call $one (i32.add (local.get $src) (i32.const 8)) (i32.add (local.get $dst) (i32.const 4)))
          (call $one (i32.add (local.get $src) (i32.const 12)) (i32.add (local.get $dst) (i32.const 6)))))
      (local.set $src (i32.add (local.get $src) (i32.const 16)))
      (local.set $dst (i32.add (local.get $dst) (i32.const 8)))
      (br $l)))
    (block $done (loop $l
      (br_if $done (i32.ge_u (local.get $src) (local.get $end)))
      (call $one (local.get $src) (local.get $dst))
      (local.set $src (i32.add (local.get $src) (i32.const 4)))
      (local.set $dst (i32.add (local.get $dst) (i32.const 2)))
      (br $l)))
    (global.set $err (f64.add (global.get $err)
      (f64.add (f64x2.extract_lane 0 (local.get $err)) (f64x2.extract_lane 1 (local.get $err)))))
    (global.set $ref (f64.add (global.get $ref)
      (f64.add (f64x2.extract_lane 0 (local.get $ref)) (f64x2.extract_lane 1 (local.get $ref))))))
)
