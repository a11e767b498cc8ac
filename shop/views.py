"""Render the shop's pages."""

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render


def home(request: HttpRequest) -> HttpResponse:
    """Render the shop's front page."""
    return render(request, "shop/home.html")
