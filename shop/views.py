"""Render the catalogue, the checkout and orders."""

from __future__ import annotations

import sys
import uuid

from django.conf import settings
from django.contrib import messages
from django.db import InterfaceError, OperationalError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.template import loader
from django.views import defaults
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods

from cart.cart import Cart
from shop import selectors
from shop.forms import CheckoutForm
from shop.list_cache import category_listing, home_listing, search_listing
from shop.models import Product
from shop.product_cache import products_in_order
from shop.recently_viewed import recently_viewed_add, recently_viewed_ids
from shop.services import CheckoutError, Customer, order_place, session_order_ids


def _recently_viewed(request: HttpRequest, *, exclude: int | None = None) -> list[Product]:
    return products_in_order(i for i in recently_viewed_ids(request.session) if i != exclude)


@require_GET
def home(request: HttpRequest) -> HttpResponse:
    listing = home_listing(number=request.GET.get("page"))
    return render(
        request,
        "shop/home.html",
        {"categories": listing.categories, "grid": listing.grid, "recently_viewed": _recently_viewed(request)},
    )


@require_GET
def category_detail(request: HttpRequest, slug: str) -> HttpResponse:
    found = category_listing(slug=slug, number=request.GET.get("page"))
    if found is None:
        raise Http404("No such category.")
    listing, category = found
    return render(
        request,
        "shop/category.html",
        {"category": category, "categories": listing.categories, "grid": listing.grid},
    )


@require_GET
def search(request: HttpRequest) -> HttpResponse:
    query = selectors.clean_query(request.GET.get("q", ""))
    searchable = selectors.searchable(query)
    listing = search_listing(query=query, number=request.GET.get("page")) if searchable else None
    return render(
        request,
        "shop/search.html",
        {"query": query, "searchable": searchable, "grid": listing.grid if listing else ""},
    )


@require_GET
def product_detail(request: HttpRequest, slug: str) -> HttpResponse:
    product = get_object_or_404(Product.objects.select_related("category"), slug=slug, is_active=True)
    recently_viewed = _recently_viewed(request, exclude=product.pk)
    # Only for visitors who keep cookies: a crawler without a cookie jar would
    # otherwise leave a new session behind on every page it fetched.
    if request.session.session_key or settings.CSRF_COOKIE_NAME in request.COOKIES:
        recently_viewed_add(request.session, product_id=product.pk)
    return render(
        request,
        "shop/product.html",
        {
            "product": product,
            "in_basket": Cart(request.session).quantity_of(product.pk),
            "max_quantity": Cart.max_quantity(product),
            "recently_viewed": recently_viewed,
        },
    )


def _initial_customer(request: HttpRequest) -> dict:
    initial = {"token": uuid.uuid4()}
    if request.user.is_authenticated:
        initial.update(name=request.user.get_full_name() or request.user.get_username(), email=request.user.email)
    return initial


@never_cache  # name, email and address: no-store, so no shared browser or proxy keeps a copy
@require_http_methods(["GET", "POST"])
def checkout(request: HttpRequest) -> HttpResponse:
    contents = Cart(request.session).contents()
    form = CheckoutForm(request.POST or None, initial=_initial_customer(request))
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            order = order_place(
                session=request.session,
                user=request.user,
                customer=Customer(name=data["name"], email=data["email"], address=data["address"]),
                token=data["token"],
            )
        except CheckoutError as error:
            messages.error(request, str(error))
            return redirect("cart:detail")
        messages.success(request, f"Thank you! Your order #{order.pk} is placed.")
        return redirect(order)
    if not contents.lines and request.method == "GET":
        messages.info(request, "Your basket is empty: add something before checking out.")
        return redirect("cart:detail")
    return render(request, "shop/checkout.html", {"form": form, "contents": contents})


@never_cache
@require_GET
def order_detail(request: HttpRequest, order_id: int) -> HttpResponse:
    order = selectors.order_get_visible(
        order_id=order_id, session_order_ids=session_order_ids(request.session), user=request.user
    )
    if order is None:
        raise Http404("No such order.")
    return render(request, "shop/order.html", {"order": order})


# How long a shopper should wait before trying again while the database cannot be reached (seconds).
DATABASE_RETRY_AFTER = 5


def server_error(request: HttpRequest) -> HttpResponse:
    """Answer an error no view handled: 503 with Retry-After when PostgreSQL cannot be reached, else Django's 500.

    Nothing was changed: every change is written to PostgreSQL first. The page
    is rendered without a context (as Django's 500 is), since filling one may
    need the database too.
    """
    unreachable = getattr(request, "database_unreachable", False)  # set by accounts.middleware
    if unreachable or isinstance(sys.exc_info()[1], OperationalError | InterfaceError):
        response = HttpResponse(loader.get_template("503.html").render(), status=503)
        response["Retry-After"] = str(DATABASE_RETRY_AFTER)
        return response
    return defaults.server_error(request)
