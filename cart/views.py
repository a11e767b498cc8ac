"""Show and change the basket."""

from __future__ import annotations

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from cart.cart import Cart, CartError, parse_quantity
from durable_sessions.backends.cached_db import locked
from shop.models import Product


def _back(request: HttpRequest) -> HttpResponse:
    """Redirect to the page the form came from, if it is ours, else to the basket."""
    target = request.POST.get("next", "")
    if url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}, require_https=request.is_secure()):
        return redirect(target)
    return redirect("cart:detail")


def _sellable(product_id: int) -> Product:
    return get_object_or_404(Product, pk=product_id, is_active=True)


@never_cache  # the visitor's basket: no-store, so no shared browser or proxy keeps a copy
@require_GET
def cart_detail(request: HttpRequest) -> HttpResponse:
    contents = Cart(request.session).contents()
    if contents.unavailable:
        with locked(request.session):
            Cart(request.session).remove(*(pk for pk, _ in contents.unavailable))
        for _, name in contents.unavailable:
            what = name or "A product"
            messages.warning(request, f"{what} is no longer available and was removed from your basket.")
    return render(request, "cart/detail.html", {"contents": contents})


@never_cache
@require_GET
def cart_summary(request: HttpRequest) -> JsonResponse:
    return JsonResponse(Cart(request.session).summary())


@require_POST
def cart_add(request: HttpRequest, product_id: int) -> HttpResponse:
    product = _sellable(product_id)
    try:
        quantity = parse_quantity(request.POST.get("quantity") or "1")
        with locked(request.session):
            total = Cart(request.session).add(product, quantity=quantity)
    except CartError as error:
        messages.error(request, str(error))
    else:
        messages.success(request, f"Added {quantity} × {product.name} to your basket (now {total}).")
    return _back(request)


@require_POST
def cart_update(request: HttpRequest, product_id: int) -> HttpResponse:
    product = _sellable(product_id)
    try:
        quantity = parse_quantity(request.POST.get("quantity"), allow_zero=True)
        with locked(request.session):
            Cart(request.session).update(product, quantity=quantity)
    except CartError as error:
        messages.error(request, str(error))
    else:
        if quantity:
            messages.success(request, f"{product.name}: quantity set to {quantity}.")
        else:
            messages.success(request, f"Removed {product.name} from your basket.")
    return _back(request)


@require_POST
def cart_remove(request: HttpRequest, product_id: int) -> HttpResponse:
    product = Product.objects.filter(pk=product_id).first()
    with locked(request.session):
        removed = Cart(request.session).remove(product_id)
    if not removed and product is None:
        raise Http404("No such product.")
    name = product.name if product else "The product"
    messages.success(request, f"Removed {name} from your basket." if removed else f"{name} was not in your basket.")
    return _back(request)


@require_POST
def cart_clear(request: HttpRequest) -> HttpResponse:
    with locked(request.session):
        Cart(request.session).clear()
    messages.success(request, "Your basket is empty.")
    return _back(request)
