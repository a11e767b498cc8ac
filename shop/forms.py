from django import forms


class CheckoutForm(forms.Form):
    name = forms.CharField(max_length=200, label="Full name")
    email = forms.EmailField(label="Email", max_length=254)
    address = forms.CharField(max_length=1000, label="Delivery address", widget=forms.Textarea(attrs={"rows": 4}))
    token = forms.UUIDField(widget=forms.HiddenInput)
