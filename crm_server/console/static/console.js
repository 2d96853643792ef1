// The console's only script: ask before a form marked data-confirm is sent (revoke, withdraw, reset).
// Every page works without it; with it, Enter or a click on such a button asks first.
document.addEventListener("submit", function (event) {
  var form = event.target;
  var question = form.getAttribute && form.getAttribute("data-confirm");
  if (question && !window.confirm(question)) {
    event.preventDefault();
  }
});
