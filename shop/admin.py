from django.contrib import admin

from shop.list_cache import catalogue_changed
from shop.models import Category, Order, OrderLine, Product
from shop.product_cache import products_forget


@admin.register(Category)
class CategoryAdmin(admin.ModelAdmin):
    list_display = ["name", "slug"]
    search_fields = ["name"]
    prepopulated_fields = {"slug": ["name"]}

    # Every list page shows the categories: a change here builds them again.
    def save_model(self, request, obj, form, change) -> None:
        super().save_model(request, obj, form, change)
        catalogue_changed()

    def delete_model(self, request, obj) -> None:
        super().delete_model(request, obj)
        catalogue_changed()

    def delete_queryset(self, request, queryset) -> None:
        super().delete_queryset(request, queryset)
        catalogue_changed()


@admin.register(Product)
class ProductAdmin(admin.ModelAdmin):
    list_display = ["name", "category", "price", "stock", "is_active", "updated_at"]
    list_editable = ["price", "stock", "is_active"]
    list_filter = ["is_active", "category"]
    list_select_related = ["category"]
    search_fields = ["name", "description"]
    prepopulated_fields = {"slug": ["name"]}
    list_per_page = 50

    # Baskets and list pages show cached products: every change here drops
    # their cache entries, and may change what a list holds or its order.
    def save_model(self, request, obj, form, change) -> None:
        super().save_model(request, obj, form, change)
        products_forget([obj.pk])
        catalogue_changed()

    def delete_model(self, request, obj) -> None:
        pk = obj.pk
        super().delete_model(request, obj)
        products_forget([pk])  # once deleted: a reader in between cannot cache the product again
        catalogue_changed()

    def delete_queryset(self, request, queryset) -> None:
        ids = list(queryset.values_list("pk", flat=True))
        super().delete_queryset(request, queryset)
        products_forget(ids)
        catalogue_changed()


class OrderLineInline(admin.TabularInline):
    model = OrderLine
    extra = 0
    can_delete = False
    readonly_fields = ["product", "product_name", "unit_price", "quantity"]

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Order)
class OrderAdmin(admin.ModelAdmin):
    list_display = ["id", "name", "email", "user", "total", "created_at"]
    list_select_related = ["user"]
    search_fields = ["name", "email", "id"]
    date_hierarchy = "created_at"
    readonly_fields = ["token", "user", "total", "created_at"]
    inlines = [OrderLineInline]
