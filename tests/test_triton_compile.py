"""The Triton kernels of the first primitives compile for sm_90 (float32 and float64) outside the
interpreter, which runs numpy and accepts code that would not compile. No GPU is needed.
(atomic_base and product_basis carry their own compile checks.)"""

from conftest import compile_check_sm90

BODY = """
    from acepy.kernels.triton_gpu import chebyshev as C, scatter as X, segment as G, sph_harm as Y, spline as S

    for ft in ("*fp64", "*fp32"):
        for order in (0, 1, 2):
            compile_sm90(S._spline_kernel,
                         dict(coeffs_ptr=ft, rscale_ptr="*fp64", nlut_ptr="*i64", r_ptr=ft, tab_ptr="*i64", f_ptr=ft,
                              df_ptr=ft, d2f_ptr=ft, E="i32", K="i32", S="i32"),
                         dict(ORDER=order, BLOCK_E=8, BLOCK_K=64))
        for kind in (0, 1):
            for code in (C.IDENTITY, C.EXP_COS, C.POW, C.LINEAR, C.AENET):
                compile_sm90(C._chebyshev_kernel,
                             dict(r_ptr=ft, par_ptr="*fp64", v_ptr=ft, d1_ptr=ft, d2_ptr=ft, E="i32"),
                             dict(N_MAX=15, KIND=kind, CODE=code, ORDER=2, BLOCK_E=128))
        for gradients in (False, True):
            compile_sm90(Y._sph_harm_kernel,
                         dict(v_ptr=ft, coef_ptr="*fp64", re_ptr=ft, im_ptr=ft, gre_ptr=ft, gim_ptr=ft, E="i32"),
                         dict(LMAX=6, GRADIENTS=gradients, BLOCK_E=128))
        compile_sm90(G._segment_sum_kernel, dict(v_ptr=ft, off_ptr="*i64", out_ptr=ft, K="i32"),
                     dict(BLOCK_E=16, BLOCK_K=128))
        compile_sm90(X._scatter_kernel,
                     dict(g_ptr=ft, r_ptr=ft, c_ptr="*i64", nb_ptr="*i64", sys_ptr="*i64", f_ptr=ft, vir_ptr=ft,
                          E="i32"),
                     dict(BLOCK_E=128))
"""


def test_first_triton_kernels_compile_for_sm90():
    compile_check_sm90(BODY)
