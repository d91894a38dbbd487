// Submits the form_post response to the application; the button remains for browsers without script.
document.getElementById("form-post").submit();
