"""gradcheck itself: it passes correct gradients and catches wrong ones with a useful message."""

import numpy as np
import pytest

from minicon import Function, GradcheckError, Tensor, gradcheck


class _SquareWithWrongBackward(Function):
    """x² with backward 2x + 0.01 at one element: a subtle bug gradcheck must catch."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x * x

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved
        wrong = 2 * x * g
        wrong.reshape(-1)[-1] += 0.01
        return wrong


def param(xp, a):
    return Tensor(xp.asarray(a, dtype=xp.float32), requires_grad=True)


def test_correct_gradient_passes_and_float32_inputs_are_checked_in_float64(xp):
    x = param(xp, [[0.3, -1.2], [2.0, 0.7]])
    assert gradcheck(lambda t: (t * t).exp(), x)
    assert x.dtype == np.float32 and x.grad is None  # the caller's tensor is untouched


def test_wrong_gradient_is_reported_with_input_element_and_values(xp):
    x = param(xp, np.linspace(-1, 1, 6).reshape(2, 3))
    w = param(xp, np.ones(3))
    with pytest.raises(GradcheckError) as info:
        gradcheck(lambda a, b: _SquareWithWrongBackward.apply(a) * b, x, w)
    message = str(info.value)
    assert "input 0, element (1, 2)" in message
    assert "analytic" in message and "numeric" in message and "relative error" in message


def test_large_inputs_use_random_directions_and_still_catch_bugs(xp):
    x = param(xp, np.linspace(-1, 1, 200))
    assert gradcheck(lambda t: (t * t).sum(), x, max_elements=16)
    with pytest.raises(GradcheckError, match="input 0, random direction"):
        gradcheck(lambda t: _SquareWithWrongBackward.apply(t), x, max_elements=16)


def test_only_inputs_that_require_grad_are_checked(xp):
    x = param(xp, [1.0, 2.0])
    c = Tensor(xp.asarray([3.0, 4.0]))
    assert gradcheck(lambda a, b: a * b, x, c)
    with pytest.raises(ValueError, match="no input has requires_grad"):
        gradcheck(lambda b: b * 2.0, c)


def test_a_function_returning_a_float_is_a_type_error(xp):
    x = param(xp, [1.0, 2.0])
    with pytest.raises(TypeError, match="fn must return a Tensor built from minicon ops, got float"):
        gradcheck(lambda a: float(a.sum().item()), x)


def test_non_tensor_arguments_pass_through(xp):
    x = param(xp, [[1.0, 2.0], [3.0, 4.0]])
    assert gradcheck(lambda t, axis: t.softmax(axis=axis), x, 0)


class _NanBackward(Function):
    @staticmethod
    def forward(ctx, x):
        return x * 1.0

    @staticmethod
    def backward(ctx, g):
        return g * ctx.xp.nan


def test_nan_gradient_fails(xp):
    with pytest.raises(GradcheckError, match="analytic nan"):
        gradcheck(_NanBackward.apply, param(xp, [0.5, 1.0]))
