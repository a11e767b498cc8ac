from django.apps import AppConfig


class ShopConfig(AppConfig):
    name = "shop"
    verbose_name = "Shop"

    def ready(self) -> None:
        from django.core.signals import request_finished

        from shop.logs import request_id_forget

        request_finished.connect(request_id_forget, dispatch_uid="shop.logs.request_id_forget")
